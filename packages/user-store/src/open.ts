import { EmbeddedUserStore } from "./embedded.js";
import { UserStoreError } from "./errors.js";
import { RedisUserStore } from "./redis.js";
import type { UserStore, UserStoreConfig } from "./types.js";

/**
 * Open the configured backend. Embedded: recovers the directory's snapshot and logs (a torn
 * tail is truncated with a warning); throws UserStoreUnavailableError if another live process
 * has it open. Redis: connects within connectTimeoutMs or throws UserStoreUnavailableError.
 */
export async function openUserStore(config: UserStoreConfig): Promise<UserStore> {
  switch (config.backend) {
    case "embedded":
      return EmbeddedUserStore.open(config);
    case "redis":
      return RedisUserStore.open(config);
    default:
      throw new UserStoreError(
        "INVALID_ARGUMENT",
        `unknown user store backend ${JSON.stringify((config as { backend?: unknown }).backend)} (expected "embedded" or "redis")`,
      );
  }
}
