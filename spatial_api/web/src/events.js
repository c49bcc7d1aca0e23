// Live incident events from GET /events (server-sent events), read with fetch so the token goes
// in the Authorization header; on a dropped stream it reconnects with Last-Event-ID, so no
// event is missed.
import { freshHeaders } from "./api.js";

/** Parse one SSE block ("event: …\nid: …\ndata: …") into {type, id, data}. */
function parse(block) {
  const event = { type: "message", id: null, data: "" };
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue; // a comment (": live", pings)
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "id") event.id = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
  }
  return event.data ? event : null;
}

/**
 * Call `onEvent({type, id, data})` for every incident event until `signal` aborts;
 * `onLive()` once the stream is live (and after each reconnection).
 */
export async function followEvents(onEvent, onLive, signal) {
  let last = null;
  while (!signal.aborted) {
    try {
      const headers = await freshHeaders({ Accept: "text/event-stream" });
      if (last) headers["Last-Event-ID"] = last;
      const response = await fetch("/events", { headers, signal });
      if (!response.ok) throw new Error(`events: ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.includes(": live")) onLive();
          const event = parse(block);
          if (event) {
            if (event.id) last = event.id;
            onEvent({ ...event, data: JSON.parse(event.data) });
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
