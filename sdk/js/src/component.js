// The component's export: tack's tool contract (`tack:plugin/tool`) over the
// tools declared with `tool()`. `tack-js build` makes the component's entry
// module import the plugin first, then re-export `tool` from here.

import { log as hostLog } from "tack:plugin/logging@0.1.0";
import { callTool, declaredTools, setLogSink, ToolError } from "./index.js";

setLogSink((level, message) => hostLog(level, message));

/** `tack:plugin/tool`. */
export const tool = {
  listTools() {
    return declaredTools().map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: JSON.stringify(t.inputSchema),
      outputSchema: t.outputSchema === undefined ? undefined : JSON.stringify(t.outputSchema),
      annotations: t.annotations,
    }));
  },

  async callTool(name, args, context) {
    const ctx = {
      callId: context.callId,
      runId: context.runId,
      sessionId: context.sessionId,
      principal: context.principal,
    };
    try {
      return await callTool(name, args, ctx);
    } catch (e) {
      const err = e instanceof ToolError ? e : new ToolError(String(e), { code: "internal" });
      // A `result` export's error: jco throws it as the `err` case.
      throw {
        code: err.code,
        message: err.message,
        field: err.field,
        retryable: err.retryable,
      };
    }
  },
};
