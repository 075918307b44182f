"""The trainer's random stream (extension/util/rng.ts): xoshiro128** seeded through splitmix32.

A row's sampling draws one uniform per decoding step from Rng(seed, 1), exactly as the built-in
engine does, so both engines sample the same tokens from the same distribution.
"""

M32 = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    return (a * b) & M32


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


class Rng:
    def __init__(self, seed: int, stream: int = 0):
        # JavaScript: (Math.trunc(seed) ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0
        x = (int(seed) ^ _imul(stream + 1, 0x9E3779B9)) & M32
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = x
            z = _imul(z ^ (z >> 16), 0x85EBCA6B)
            z = _imul(z ^ (z >> 13), 0xC2B2AE35)
            s.append((z ^ (z >> 16)) & M32)
        if all(v == 0 for v in s):
            s[0] = 1
        self.s = s

    def next_uint32(self) -> int:
        s = self.s
        result = _imul(_rotl(_imul(s[1], 5), 7), 9)
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 11)
        return result

    def uniform(self) -> float:
        hi = self.next_uint32() >> 5
        lo = self.next_uint32() >> 6
        return (hi * 67108864 + lo) / 9007199254740992
