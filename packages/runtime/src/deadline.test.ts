/**
 * Deadline propagation through two real servers (client -> candidate generation -> ranking),
 * over both client transports. The helpers' arithmetic is tested in
 * packages/transport/src/deadline.test.ts.
 */
import { CandidateGenerationService, RankingService } from "@recsys/gen";
import { afterEach, describe, expect, it } from "vitest";
import {
  callDeadlineMs,
  childCallOptions,
  type Client,
  connect,
  createClient,
  DEFAULT_DEADLINE_MARGIN_MS,
  DEFAULT_OUTGOING_TIMEOUT_MS,
  implement,
  isServiceError,
  status,
  type UnaryTransport,
} from "@recsys/transport";
import { startService, type RunningService } from "./service.js";
import { testConfig } from "./testing/index.js";

describe.each(["http2", "grpc-js"] as const)("deadline propagation (%s transport)", (transport) => {
  const running: RunningService[] = [];
  const clients: Array<{ $close(): void }> = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.$close();
    await Promise.all(running.splice(0).map((service) => service.stop()));
  });

  /** Ranking records the deadline it sees and answers after `delayMs` (or when cancelled). */
  async function startChain(delayMs: number, options: { budgetMs?: number; marginMs?: number }) {
    const seen = { parent: NaN, child: NaN, childAborted: false, childDone: false };
    const ranking = await startService({
      stage: "downstream",
      config: testConfig(),
      services: [
        implement(RankingService, {
          async rank(_request, ctx) {
            seen.child = callDeadlineMs(ctx.call);
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, delayMs);
              ctx.signal.addEventListener("abort", () => {
                seen.childAborted = true;
                clearTimeout(timer);
                resolve();
              });
            });
            seen.childDone = true;
            return { items: [] };
          },
        }),
      ],
    });
    running.push(ranking);
    // Records the deadline each outgoing call is issued with (what goes into grpc-timeout).
    const carried: number[] = [];
    const inner = connect(RankingService, ranking.address, { transport }).$transport;
    const recording: UnaryTransport = {
      unary: (path, request, callOptions) => {
        carried.push(callOptions.deadline);
        return inner.unary(path, request, callOptions);
      },
      waitForReady: (deadline) => inner.waitForReady(deadline),
      close: () => inner.close(),
    };
    const rankingClient = createClient(RankingService, recording);
    clients.push(rankingClient);
    const upstream = await startService({
      stage: "upstream",
      config: testConfig(),
      services: [
        implement(CandidateGenerationService, {
          async embedUser(request, ctx) {
            seen.parent = ctx.deadline;
            await rankingClient.rank({ context: request.context }, childCallOptions(ctx.call, options));
            return { userVector: [1, 2, 3] };
          },
        }),
      ],
    });
    running.push(upstream);
    const client: Client<typeof CandidateGenerationService.method> = connect(CandidateGenerationService, upstream.address, { transport });
    clients.push(client);
    return { seen, client, carried };
  }

  it("gives the downstream call a deadline no later than the parent's", async () => {
    // A generous budget, so the parent's deadline is what binds; a margin larger than loopback
    // transit time so that the comparison below needs no tolerance.
    const { seen, client, carried } = await startChain(0, { budgetMs: 60_000 });
    const sent = Date.now();
    const response = await client.embedUser({ context: { userId: "u" } }, { deadline: sent + 3000 });
    expect(response.userVector).toEqual([1, 2, 3]);
    expect(seen.parent).toBeGreaterThan(sent + 2000); // the upstream saw our deadline
    // The deadline the downstream call was issued with: the parent's minus the margin.
    expect(carried).toHaveLength(1);
    expect(carried[0]).toBeLessThanOrEqual(seen.parent - DEFAULT_DEADLINE_MARGIN_MS);
    expect(carried[0]).toBeGreaterThan(seen.parent - 1000);
    // The downstream server derives it from grpc-timeout on arrival, so it is later by the
    // transit time (noisy on a loaded machine): allow a second, far below the 60 s budget.
    expect(seen.child).toBeLessThan(seen.parent + 1000);
  });

  it("caps the downstream call by the stage budget", async () => {
    const { seen, client, carried } = await startChain(0, { budgetMs: 200 });
    const sent = Date.now();
    await client.embedUser({ context: { userId: "u" } }, { deadline: sent + 10_000 });
    expect(carried[0]).toBeLessThanOrEqual(Date.now() + 200);
    expect(seen.child).toBeLessThan(seen.parent - 5000);
  });

  it("cancels the downstream call when the parent's deadline passes", async () => {
    const { seen, client } = await startChain(5000, { budgetMs: 60_000 });
    const started = Date.now();
    let error: unknown;
    try {
      await client.embedUser({ context: { userId: "u" } }, { deadline: started + 300 });
    } catch (caught) {
      error = caught;
    }
    expect(isServiceError(error) && error.code, `${(error as { details?: string })?.details}`).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(2000);
    // The downstream handler was told to stop instead of working for 5 s.
    const until = Date.now() + 2000;
    while (!seen.childAborted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(seen.childAborted).toBe(true);
  });

  it("bounds a call without a deadline by the client's default timeout", async () => {
    const { seen, client } = await startChain(0, { budgetMs: 60_000 });
    const sent = Date.now();
    await client.embedUser({ context: { userId: "u" } });
    expect(seen.parent).toBeLessThanOrEqual(Date.now() + DEFAULT_OUTGOING_TIMEOUT_MS);
    expect(seen.parent).toBeGreaterThan(sent);
  });
});
