// Compile a solc standard-JSON input (stdin) with the pinned npm solc (solcjs); print the standard-JSON output.
// Called by contracts/build.py; every source is in the input, so no import callback (and no file access) is needed.
const solc = require("solc");
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  if (process.argv[2] === "--version") {
    process.stdout.write(solc.version());
    return;
  }
  process.stdout.write(solc.compile(Buffer.concat(chunks).toString("utf8")));
});
