#!/usr/bin/env node
/**
 * `recsys`: the command-line entry point. Each command lives in its own module under
 * ./commands and exports `run(argv: string[]): Promise<number>` (the exit code).
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  train: {
    summary: "train a model bundle: --dataset SPEC --out DIR [--epochs N] [--seed S] [--protocol lastout|lastout-shuffled] [--tie-seed S]",
    load: () => import("./commands/train.js"),
  },
  start: {
    summary:
      "the main job: train (or reuse), evaluate, start the four services and serve: [--dataset SPEC] [--no-serve] [--shards N] [--port P]",
    load: () => import("./commands/start.js"),
  },
  recommend: {
    summary: "ask the running stack: --user ID | --session ITEM,ITEM [--count N] [--address HOST:PORT] [--json] [--debug]",
    load: () => import("./commands/recommend.js"),
  },
  event: {
    summary: 'record an event: --user ID (--watch ITEM [--seconds S] | --search "query" | --impression ITEM) [--address HOST:PORT]',
    load: () => import("./commands/event.js"),
  },
  "train-ranker": {
    summary:
      "train the ranker behind a bundle (and its session model, when DIR/session/ exists): --dataset SPEC --model DIR [--epochs N] [--seed S] [--no-provenance] [--no-session]",
    load: () => import("./commands/train-ranker.js"),
  },
  "train-session": {
    summary:
      "train the session model behind a bundle (DIR/session/): --dataset SPEC --model DIR [--encoder sasrec|gru4rec|narm|stamp] [--epochs N] [--seed S]",
    load: () => import("./commands/train-session.js"),
  },
  status: {
    summary: "health, readiness, model version and restarts of every stage of the running stack: [--state FILE] [--json]",
    load: () => import("./commands/status.js"),
  },
  retrain: {
    summary:
      "retrain both models on the live log, gate against the serving bundle, publish: [--dataset store:DIR] [--current PATH] [--margin M] [--dry-run]",
    load: () => import("./commands/retrain.js"),
  },
  report: {
    summary: "an HTML report with figures from evaluate --json results: --input FILE[,FILE...] --out DIR",
    load: () => import("./commands/report.js"),
  },
  evaluate: {
    summary:
      "offline evaluation, protocols lastout and lastout-shuffled side by side: --dataset SPEC --model DIR [--shuffled-model DIR] [--tie-seed S] [--split test|val] [--json]",
    load: () => import("./commands/evaluate.js"),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: recsys <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  // `store:` datasets (every command that loads one) read the system's own stores.
  const [{ registerStoreOpener }, { openStoreContents }] = await Promise.all([import("@recsys/data"), import("./store-opener.js")]);
  registerStoreOpener(openStoreContents);
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`recsys: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const module = await command.load();
  return module.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`recsys: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
