import { main } from "./main.js";

// `hapops stat | head` closes the pipe early; that is not an error worth a stack trace. The
// command still runs to its end, so a change is still verified and its audit record written.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
});

// The bundle is CommonJS (it starts ~10 ms faster than an ES module on Node 20), so no
// top-level await here.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
