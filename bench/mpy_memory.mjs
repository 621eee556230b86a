#!/usr/bin/env node
// Memory bench driver (bench/memory_bench.py runs it): loads the MicroPython 1.27 VM, copies the
// firmware tree into /app, runs bench/mpy_memory.py and then calls its bench.step() once per
// runPython() call, collecting garbage in a separate call after each step.
//
// Why separate calls: inside one runPython() call this VM reclaims nothing (its collector finds
// stale pointers on the wasm stack) and grows its heap instead of failing, so a step's own
// allocations are exact (nothing is freed during it) and a collection between calls gives the
// heap really in use.
//
// Usage: node bench/mpy_memory.mjs --app DIR SCRIPT.py ARG...
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.mkdir(cur);
    } catch {
      /* exists */
    }
  }
}

function copyIn(FS, host, vm) {
  if (fs.statSync(host).isDirectory()) {
    mkdirs(FS, vm);
    for (const name of fs.readdirSync(host).sort()) {
      if (name === "__pycache__") continue;
      copyIn(FS, path.join(host, name), vm + "/" + name);
    }
  } else {
    FS.writeFile(vm, fs.readFileSync(host));
  }
}

const argv = process.argv.slice(2);
const appIdx = argv.indexOf("--app");
if (appIdx < 0 || argv.length < appIdx + 3) {
  process.stderr.write("usage: node mpy_memory.mjs --app DIR SCRIPT.py ARG...\n");
  process.exit(2);
}
const appDir = argv[appIdx + 1];
const script = argv[appIdx + 2];
const args = argv.slice(appIdx + 3);

const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve("@micropython/micropython-webassembly-pyscript/package.json"));
const { loadMicroPython } = await import(path.join(pkgDir, "micropython.mjs"));
const mp = await loadMicroPython({
  heapsize: 512 * 1024,
  linebuffer: true,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
mkdirs(mp.FS, "/app");
copyIn(mp.FS, appDir, "/app");
mp.FS.writeFile("/app/_bench_main.py", fs.readFileSync(script));

let rc = 0;
try {
  mp.globals.set("_argv", JSON.stringify(["_bench_main.py", ...args]));
  mp.runPython(
    "import sys, os, json, gc\nsys.path.insert(0, '/app')\nos.chdir('/app')\n" +
      "sys.argv[:] = json.loads(_argv)\n_g = {'__name__': '__main__'}\n" +
      "exec(open('_bench_main.py').read(), _g)\n_s = _g['_s']\n_c = _g['_c']\n" +
      "_bench = _g['bench']\ndel _g\n",
  );
  mp.runPython("gc.collect()\n");
  for (;;) {
    mp.runPython("_more = _s()\n");
    mp.runPython("_c()\n");
    if (!mp.globals.get("_more")) break;
  }
  mp.runPython("_bench.report()\n");
} catch (err) {
  process.stderr.write(`mpy_memory: ${err && err.message ? err.message : err}\n`);
  rc = 1;
}
process.exitCode = rc;
