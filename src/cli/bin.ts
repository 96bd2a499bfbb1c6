import { main } from "./main.js";

// The bundle is CommonJS (it starts ~10 ms faster than an ES module on Node 20), so no
// top-level await here.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
