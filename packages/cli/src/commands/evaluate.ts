export async function run(_argv: string[]): Promise<number> { throw new Error("recsys evaluate: not implemented yet"); }
