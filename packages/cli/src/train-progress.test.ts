import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TrainProgress } from "@recsys/candidate-gen";
import { describe, expect, it } from "vitest";
import { run } from "./commands/train.js";
import { formatDuration, formatProgress, progressReporter } from "./train-progress.js";

const p = (over: Partial<TrainProgress>): TrainProgress => ({
  epoch: 2,
  epochs: 5,
  step: 50,
  steps: 100,
  loss: 5.4321,
  examplesPerSecond: 12345.6,
  elapsedSeconds: 65,
  etaSeconds: 125,
  epochDone: false,
  ...over,
});

describe("train progress", () => {
  it("formats epoch, bar, loss, rate and ETA", () => {
    expect(formatDuration(65)).toBe("1:05");
    expect(formatDuration(3725)).toBe("1:02:05");
    const line = formatProgress(p({}), 10);
    expect(line).toContain("epoch 2/5 [#####.....]  50%");
    expect(line).toContain("loss 5.4321");
    expect(line).toContain("12,346 ex/s");
    expect(line).toContain("ETA 2:05");
  });

  it("redraws one line on a terminal and prints plain lines per epoch otherwise", () => {
    const tty: string[] = [];
    const r1 = progressReporter({ isTTY: true, write: (s) => tty.push(s) });
    r1.update(p({}));
    r1.update(p({ step: 100, epochDone: true }));
    r1.update(p({ epoch: 3, step: 10 }));
    r1.done();
    expect(tty[0]!.startsWith("\r\x1b[2K")).toBe(true);
    expect(tty.filter((s) => s === "\n").length).toBe(2);

    const plain: string[] = [];
    const r2 = progressReporter({ isTTY: false, write: (s) => plain.push(s) });
    r2.update(p({}));
    r2.update(p({ step: 100, epochDone: true }));
    r2.done();
    expect(plain).toHaveLength(1);
    expect(plain[0]).toMatch(/^epoch 2\/5 .*\n$/);
    expect(plain[0]).not.toContain("\r");
  });
});

describe("recsys train", () => {
  it("rejects bad options with exit code 2", async () => {
    expect(await run(["--dataset", "synthetic:users=10,items=10"])).toBe(2);
    expect(await run(["--dataset", "synthetic:users=10,items=10", "--out", "/tmp/x", "--holdout", "train"])).toBe(2);
    expect(await run(["--dataset", "synthetic:users=10,items=10", "--out", "/tmp/x", "--epochs", "0"])).toBe(2);
    expect(await run(["--dataset", "synthetic:users=10,items=10", "--out", "/tmp/x", "--history-pooling", "max"])).toBe(2);
  });

  it("trains a bundle with the requested holdout, seed and epochs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "recsys-train-"));
    try {
      const code = await run([
        "--dataset",
        "synthetic:users=150,items=80,seed=3",
        "--out",
        dir,
        "--epochs",
        "1",
        "--seed",
        "5",
        "--holdout",
        "val",
        "--history-pooling",
        "attention",
      ]);
      expect(code).toBe(0);
      const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as {
        holdout: string;
        datasetSpec: string;
        trainConfig: { seed: number; epochs: number };
        train: { epochs: number };
        model: { historyPooling: string };
        files: { attention?: { file: string } };
      };
      expect(manifest.model.historyPooling).toBe("attention");
      expect(manifest.files.attention?.file).toBe("attention.f32");
      expect(manifest.holdout).toBe("val");
      expect(manifest.datasetSpec).toBe("synthetic:users=150,items=80,seed=3");
      expect(manifest.trainConfig.seed).toBe(5);
      expect(manifest.train.epochs).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
