// The Vercel AI SDK's default provider `openai(model)` (the Responses API) against a gateway.
// Usage: node run.mjs generate|stream ; env DEXTO_BASE_URL, DEXTO_API_KEY, DEXTO_MODEL.
// Prints one JSON object: {text, usage, headers} or {error: {name, statusCode, message}}.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const openai = createOpenAI({
  baseURL: process.env.DEXTO_BASE_URL,
  apiKey: process.env.DEXTO_API_KEY,
});
const model = openai(process.env.DEXTO_MODEL ?? "openai/gpt-4o-mini");
const mode = process.argv[2] ?? "generate";

function errorDoc(err) {
  const e = err && err.lastError ? err.lastError : err;
  return {
    error: {
      name: e?.name ?? String(e),
      statusCode: e?.statusCode ?? null,
      message: e?.message ?? String(e),
    },
  };
}

try {
  let out;
  if (mode === "stream") {
    let failure = null;
    const result = streamText({
      model,
      prompt: "hello",
      maxRetries: 0,
      onError: ({ error }) => {
        failure = error;
      },
    });
    let text = "";
    for await (const part of result.textStream) text += part;
    if (failure) throw failure;
    out = { text, usage: await result.usage, headers: (await result.response).headers ?? {} };
  } else {
    const result = await generateText({ model, prompt: "hello", maxRetries: 0 });
    out = { text: result.text, usage: result.usage, headers: result.response.headers ?? {} };
  }
  process.stdout.write(JSON.stringify(out));
} catch (err) {
  process.stdout.write(JSON.stringify(errorDoc(err)));
}
