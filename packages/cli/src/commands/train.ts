export async function run(_argv: string[]): Promise<number> { throw new Error("recsys train: not implemented yet"); }
