import type { TrainProgress } from "@recsys/candidate-gen";

/** Formats seconds as m:ss (or h:mm:ss). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** One progress line: epoch, bar, loss, examples/s, ETA. */
export function formatProgress(p: TrainProgress, width = 24): string {
  const frac = p.steps > 0 ? Math.min(1, p.step / p.steps) : 1;
  const filled = Math.round(frac * width);
  const bar = `${"#".repeat(filled)}${".".repeat(width - filled)}`;
  const rate = Math.round(p.examplesPerSecond).toLocaleString("en-US");
  return `epoch ${p.epoch}/${p.epochs} [${bar}] ${String(Math.round(frac * 100)).padStart(3)}%  loss ${p.loss.toFixed(4)}  ${rate} ex/s  elapsed ${formatDuration(p.elapsedSeconds)}  ETA ${formatDuration(p.etaSeconds)}`;
}

export interface ProgressSink {
  readonly isTTY: boolean;
  write(text: string): void;
}

/**
 * A progress reporter for `recsys train`: on a terminal one line redrawn in place; otherwise
 * (logs, CI) a plain line at the end of every epoch.
 */
export function progressReporter(sink: ProgressSink = process.stderr): { update(p: TrainProgress): void; done(): void } {
  let drawn = false;
  return {
    update(p: TrainProgress): void {
      if (sink.isTTY) {
        sink.write(`\r\x1b[2K${formatProgress(p)}`);
        drawn = true;
        if (p.epochDone) {
          sink.write("\n");
          drawn = false;
        }
      } else if (p.epochDone) {
        sink.write(`${formatProgress(p)}\n`);
      }
    },
    done(): void {
      if (drawn) sink.write("\n");
      drawn = false;
    },
  };
}
