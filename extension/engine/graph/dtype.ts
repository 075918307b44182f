/** Element types the graph builder knows, with their ONNX codes and JavaScript storage. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool';

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** A tensor's values on the host: what graph inputs are fed with and outputs come back as. */
export interface HostTensor {
  dtype: DType;
  dims: readonly number[];
  data: TypedArray;
}

export const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  bool: 1,
};

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

export function allocate(dtype: DType, length: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'bool':
      return new Uint8Array(length);
  }
}

/** Fills a new typed array of `dtype` from plain numbers. */
export function fromNumbers(dtype: DType, values: readonly number[]): TypedArray {
  const out = allocate(dtype, values.length);
  if (out instanceof BigInt64Array) {
    values.forEach((v, i) => (out[i] = BigInt(Math.trunc(v))));
  } else {
    values.forEach((v, i) => ((out as Float32Array)[i] = v));
  }
  return out;
}

export function dtypeOfArray(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  return 'bool';
}
