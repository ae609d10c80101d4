/**
 * @recsys/deploy-checks: the checks of deploy/ and k8s/ (run by its tests), exported for tools.
 */
export { OVERLAYS, REPO_ROOT, overlayDir, type OverlayName } from "./paths.js";
export { STAGES, isLanded, loadStagePackage, stageByName, stageOfK8sName, type LandedPackage, type StageInfo } from "./stages.js";
export { kustomizeVersion, parseObjects, renderKustomization, type K8sObject } from "./kustomize.js";
export { strictFieldCheck, validateSchemas, type ValidationProblem } from "./validate.js";
export {
  checkEnvAgainstSchema,
  checkImages,
  checkPorts,
  checkScalingObjects,
  checkSecurityAndResources,
  checkServiceKinds,
  checkShardsAndAddresses,
  checkShutdownTiming,
  checkVolumes,
  containerEnv,
  workloads,
} from "./manifest-checks.js";
export { exposedMetricNames, metricNames } from "./promql.js";
export { prometheusRuleObject, prometheusRuleYaml, readRuleFiles } from "./rules.js";
