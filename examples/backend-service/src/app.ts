/**
 * A small backend service, as a web shop or a video site would run one, calling recsys with
 * @recsys/client. It serves the endpoints its web page calls:
 *
 *   GET  /api/recommendations?user=17&count=10   the user's list, as JSON for the page
 *   POST /api/watch  {"user": "17", "item": "42", "seconds": 120}   the user watched an item
 *   POST /api/items  {"id": "v-42", "title": "…", "tags": ["cats"], "channel": "ch-a", "seconds": 95}
 *                                                 a creator uploaded an item (UpsertItems)
 *   DELETE /api/items/<id>                        the item is taken down (DeleteItems)
 *   GET  /                                        a page that shows the list
 *   GET  /healthz
 *
 * What it does right:
 * - a short deadline per call (the page must not wait on recommendations), passed to recsys;
 * - the impressions of every list it returns are recorded (after the answer is sent, off the
 *   request's path), with their positions and the answer's request id: the ranker learns from
 *   what was shown and not watched;
 * - errors switched on by code: the caller's mistakes are 400s, recsys being down or slow is a 503
 *   the page answers with its fallback (and the retries of Recommend are the client's);
 * - RecordEvents is not retried (a watch recorded twice would count twice);
 * - the catalogue writes get a longer deadline (they reach every retrieval shard) and are retried
 *   by the client (idempotent); the upload time is sent, so a retry stores the same item.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, isRecsysError, timestampFromDate, watchEvent, type RecsysClient } from "@recsys/client";

export interface AppOptions {
  /** Deadline of a Recommend call, ms. Default 300. */
  readonly recommendTimeoutMs?: number;
  /** Deadline of a RecordEvents call, ms. Default 1000. */
  readonly recordTimeoutMs?: number;
  /** Deadline of an UpsertItems / DeleteItems call, ms. Default 10 000. */
  readonly catalogueTimeoutMs?: number;
  /** Where errors that do not reach the page are reported. Default: stderr. */
  readonly log?: (message: string) => void;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** The HTTP status a page gets for a failed recsys call. */
function httpStatus(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.InvalidArgument:
      return 400;
    case ErrorCode.NotFound:
      return 404;
    case ErrorCode.Unavailable:
    case ErrorCode.DeadlineExceeded:
    case ErrorCode.FailedPrecondition:
      return 503; // the page shows its fallback (e.g. the editors' picks)
    default:
      return 502;
  }
}

function failed(response: ServerResponse, error: unknown, log: (message: string) => void): void {
  if (isRecsysError(error)) {
    if (error.code !== ErrorCode.InvalidArgument) log(`recsys call failed: ${error.message}`);
    json(response, httpStatus(error.code), { error: error.details, code: error.code });
    return;
  }
  log(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  json(response, 500, { error: "internal error" });
}

async function readJson(request: IncomingMessage, maxBytes = 64 * 1024): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new Error(`body larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>Recommended for you</title>
<form><input name="user" placeholder="user id" value="17"> <button>Show</button></form>
<ol id="list"></ol>
<script>
const form = document.querySelector("form"), list = document.querySelector("#list");
form.onsubmit = async (event) => {
  event.preventDefault();
  const answer = await fetch("/api/recommendations?count=10&user=" + encodeURIComponent(form.user.value));
  const body = await answer.json();
  list.replaceChildren(...(answer.ok ? body.items : []).map((item) => {
    const li = document.createElement("li");
    li.textContent = item.id + " — " + item.reasons.join("; ");
    li.onclick = () => fetch("/api/watch", { method: "POST", body: JSON.stringify({ user: form.user.value, item: item.id }) });
    return li;
  }));
  if (!answer.ok) list.textContent = "Recommendations are unavailable right now.";
};
</script>
`;

export function createApp(recsys: RecsysClient, options: AppOptions = {}): Handler {
  const recommendTimeoutMs = options.recommendTimeoutMs ?? 300;
  const recordTimeoutMs = options.recordTimeoutMs ?? 1000;
  const catalogueTimeoutMs = options.catalogueTimeoutMs ?? 10_000;
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));

  async function recommendations(url: URL, response: ServerResponse): Promise<void> {
    const user = url.searchParams.get("user") ?? "";
    const count = Number(url.searchParams.get("count") ?? "10");
    if (user === "" || !Number.isInteger(count)) {
      json(response, 400, { error: "expected ?user=<id>&count=<integer>" });
      return;
    }
    const answer = await recsys.recommend({ userId: user, count }, { timeoutMs: recommendTimeoutMs });
    json(response, 200, {
      requestId: answer.requestId,
      degraded: answer.degraded,
      items: answer.items.map((item) => ({ id: item.itemId, score: item.score, reasons: item.reasons })),
    });
    // The list is on its way to the page: record what it shows, off the request's path.
    recsys.recordImpressions(user, answer, { timeoutMs: recordTimeoutMs }).catch((error: unknown) => {
      log(`impressions of ${answer.requestId} not recorded: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  async function watch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body: { user?: unknown; item?: unknown; seconds?: unknown };
    try {
      body = (await readJson(request)) as typeof body;
    } catch (error) {
      json(response, 400, { error: `expected a JSON body: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
    if (
      typeof body?.user !== "string" ||
      typeof body.item !== "string" ||
      (body.seconds !== undefined && typeof body.seconds !== "number")
    ) {
      json(response, 400, { error: 'expected {"user": string, "item": string, "seconds"?: number}' });
      return;
    }
    const event = watchEvent(body.user, body.item, body.seconds === undefined ? {} : { watchSeconds: body.seconds });
    await recsys.recordEvents({ events: [event] }, { timeoutMs: recordTimeoutMs });
    response.writeHead(204).end();
  }

  async function upload(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body: { id?: unknown; title?: unknown; tags?: unknown; channel?: unknown; seconds?: unknown };
    try {
      body = (await readJson(request)) as typeof body;
    } catch (error) {
      json(response, 400, { error: `expected a JSON body: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
    const optionalString = (value: unknown): boolean => value === undefined || typeof value === "string";
    if (
      typeof body?.id !== "string" ||
      !optionalString(body.title) ||
      !optionalString(body.channel) ||
      !(body.tags === undefined || (Array.isArray(body.tags) && body.tags.every((tag) => typeof tag === "string"))) ||
      !(body.seconds === undefined || typeof body.seconds === "number")
    ) {
      json(response, 400, {
        error: 'expected {"id": string, "title"?: string, "tags"?: string[], "channel"?: string, "seconds"?: number}',
      });
      return;
    }
    const answer = await recsys.upsertItems(
      {
        items: [
          {
            itemId: body.id,
            title: (body.title as string | undefined) ?? "",
            tags: (body.tags as string[] | undefined) ?? [],
            channel: (body.channel as string | undefined) ?? "",
            uploadedAt: timestampFromDate(new Date()),
            ...(body.seconds === undefined ? {} : { durationSeconds: body.seconds as number }),
          },
        ],
      },
      { timeoutMs: catalogueTimeoutMs },
    );
    json(response, 201, { id: body.id, embedded: answer.embedded === 1 });
  }

  async function takeDown(id: string, response: ServerResponse): Promise<void> {
    await recsys.deleteItems({ itemIds: [id] }, { timeoutMs: catalogueTimeoutMs });
    response.writeHead(204).end();
  }

  return (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    let work: Promise<void>;
    if (request.method === "GET" && url.pathname === "/api/recommendations") work = recommendations(url, response);
    else if (request.method === "POST" && url.pathname === "/api/watch") work = watch(request, response);
    else if (request.method === "POST" && url.pathname === "/api/items") work = upload(request, response);
    else if (request.method === "DELETE" && url.pathname.startsWith("/api/items/") && url.pathname.length > "/api/items/".length) {
      work = takeDown(decodeURIComponent(url.pathname.slice("/api/items/".length)), response);
    } else if (request.method === "GET" && url.pathname === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
      return;
    } else if (request.method === "GET" && url.pathname === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    } else {
      json(response, 404, { error: `no route ${request.method} ${url.pathname}` });
      return;
    }
    work.catch((error: unknown) => failed(response, error, log));
  };
}
