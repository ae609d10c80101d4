/**
 * @recsys/sequence: session / sequence encoders (SASRec-style causal self-attention, GRU4Rec)
 * behind one interface, trained for next-item prediction on the tfjs-wasm backend with the
 * candidate generator's sparse item-embedding updates.
 */
export { ENCODER_KINDS, Gru4RecEncoder, NarmEncoder, SasRecEncoder, StampEncoder, createEncoder } from "./encoders.js";
export type { Dropout, EncodeInputs, EncoderConfig, EncoderKind, SequenceEncoder } from "./encoders.js";
export { PAD, SequenceModel } from "./model.js";
export { sequenceBlas, setSequenceKernels } from "./ops.js";
export type { SequenceKernels } from "./ops.js";
export { DEFAULT_SEQUENCE_CONFIG, buildWindows, trainSequenceModel, validateSequenceConfig } from "./trainer.js";
export type { SequenceTrainConfig, SequenceTrainOptions, SequenceTrainResult, SoftmaxKind, TrainProgress } from "./trainer.js";
export { sequenceScorer, userSequences } from "./dataset.js";
export { sessionEncoder } from "./session.js";
export type { SessionEncoderOptions } from "./session.js";
export { SasRecInference } from "./sasrec-inference.js";
export type { SasRecBlockWeights, SasRecWeights } from "./sasrec-inference.js";
export { SEQUENCE_FORMAT, loadSequenceModel, saveSequenceModel } from "./model-io.js";
export { ITEM_COUNTS_FILE, trainingTargetCounts } from "./item-counts.js";
export type { SequenceManifest } from "./model-io.js";
