export async function main(argv: string[]): Promise<number> {
  process.stdout.write(`absp ${argv.join(' ')}\n`);
  return 0;
}
