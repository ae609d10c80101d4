/**
 * A trained sequence model on disk: `manifest.json` (format, encoder config, catalogue ids, the
 * shapes of the weights in order), `weights.f32` (little-endian float32: the item table, then
 * the encoder's variables in their fixed order) and, when the trainer gave them, `item-counts.u32`
 * (little-endian uint32: each item's training target count, item-counts.ts), named in the
 * manifest. Models saved without counts load with `itemCounts` undefined.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { assignFrom, tf } from "@recsys/tf";
import type { EncoderConfig } from "./encoders.js";
import { ITEM_COUNTS_FILE } from "./item-counts.js";
import { SequenceModel } from "./model.js";

export const SEQUENCE_FORMAT = "recsys-sequence/1";

export interface SequenceManifest {
  readonly format: typeof SEQUENCE_FORMAT;
  readonly encoder: EncoderConfig;
  /** External item id of each item index the model was trained on. */
  readonly itemIds: readonly string[];
  /** Shapes of the arrays in weights.f32, in order (the item table first). */
  readonly shapes: readonly (readonly number[])[];
  readonly savedAt: string;
  /**
   * The file (beside weights.f32) with each item's training count, in item-id order, and what was
   * counted ("targets": next-item positions of the training windows, one epoch). Absent in models
   * saved without counts.
   */
  readonly itemCounts?: { readonly file: string; readonly of: "targets" };
  /** Free-form training facts (dataset spec, holdout, epochs, ...). */
  readonly training?: Readonly<Record<string, unknown>>;
}

export async function saveSequenceModel(
  dir: string,
  model: SequenceModel,
  itemIds: readonly string[],
  training?: Record<string, unknown>,
  /** Training target count of each item (trainingTargetCounts), saved as item-counts.u32. */
  itemCounts?: Uint32Array,
): Promise<void> {
  if (itemIds.length !== model.numItems) throw new Error(`saveSequenceModel: ${itemIds.length} item ids for ${model.numItems} items`);
  if (itemCounts !== undefined && itemCounts.length !== model.numItems)
    throw new Error(`saveSequenceModel: ${itemCounts.length} item counts for ${model.numItems} items`);
  await mkdir(dir, { recursive: true });
  const arrays: Float32Array[] = [model.items.data, ...model.encoder.variables.map((v) => v.dataSync() as Float32Array)];
  const shapes = [[model.numItems + 1, model.dim], ...model.encoder.variables.map((v) => v.shape)];
  const total = arrays.reduce((a, x) => a + x.length, 0);
  const flat = new Float32Array(total);
  let o = 0;
  for (const a of arrays) {
    flat.set(a, o);
    o += a.length;
  }
  const manifest: SequenceManifest = {
    format: SEQUENCE_FORMAT,
    encoder: model.config,
    itemIds,
    shapes,
    savedAt: new Date().toISOString(),
    ...(training === undefined ? {} : { training }),
    ...(itemCounts === undefined ? {} : { itemCounts: { file: ITEM_COUNTS_FILE, of: "targets" as const } }),
  };
  await writeFile(join(dir, "weights.f32.tmp"), new Uint8Array(flat.buffer));
  await rename(join(dir, "weights.f32.tmp"), join(dir, "weights.f32"));
  if (itemCounts !== undefined) {
    await writeFile(join(dir, `${ITEM_COUNTS_FILE}.tmp`), new Uint8Array(itemCounts.buffer, itemCounts.byteOffset, itemCounts.byteLength));
    await rename(join(dir, `${ITEM_COUNTS_FILE}.tmp`), join(dir, ITEM_COUNTS_FILE));
  }
  // The manifest last: a model is complete once its manifest names it.
  await writeFile(join(dir, "manifest.json.tmp"), `${JSON.stringify(manifest)}\n`);
  await rename(join(dir, "manifest.json.tmp"), join(dir, "manifest.json"));
}

/**
 * The model in `dir`, its manifest and, when the manifest names them, its item counts (one per
 * item id; undefined for a model saved without).
 */
export async function loadSequenceModel(
  dir: string,
): Promise<{ model: SequenceModel; manifest: SequenceManifest; itemCounts: Uint32Array | undefined }> {
  const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as SequenceManifest;
  if (manifest.format !== SEQUENCE_FORMAT)
    throw new Error(`${join(dir, "manifest.json")}: format "${String(manifest.format)}", expected "${SEQUENCE_FORMAT}"`);
  const itemCounts = manifest.itemCounts === undefined ? undefined : await readItemCounts(dir, manifest);
  const bytes = await readFile(join(dir, "weights.f32"));
  const flat = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const model = new SequenceModel(manifest.itemIds.length, manifest.encoder, 0);
  const targets = [model.items.data.length, ...model.encoder.variables.map((v) => v.size)];
  const expected = targets.reduce((a, b) => a + b, 0);
  if (flat.length !== expected || manifest.shapes.length !== targets.length) {
    model.dispose();
    throw new Error(
      `${join(dir, "weights.f32")}: ${flat.length} values in ${manifest.shapes.length} arrays, the ${manifest.encoder.kind} encoder needs ${expected} in ${targets.length}`,
    );
  }
  model.items.data.set(flat.subarray(0, targets[0]!));
  let o = targets[0]!;
  model.encoder.variables.forEach((v) => {
    assignFrom(v, tf.tensor(flat.subarray(o, o + v.size), v.shape));
    o += v.size;
  });
  return { model, manifest, itemCounts };
}

async function readItemCounts(dir: string, manifest: SequenceManifest): Promise<Uint32Array> {
  const path = join(dir, manifest.itemCounts!.file);
  const bytes = await readFile(path);
  if (bytes.byteLength !== manifest.itemIds.length * 4)
    throw new Error(`${path}: ${bytes.byteLength} bytes, expected ${manifest.itemIds.length * 4} (a uint32 per item id)`);
  return new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
