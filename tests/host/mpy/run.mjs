#!/usr/bin/env node
// Run a Python script under the MicroPython 1.27 WebAssembly VM (npm package
// @micropython/micropython-webassembly-pyscript) with host files copied into
// its in-memory filesystem.
//
// Usage:
//   node tests/host/mpy/run.mjs [options] ENTRY.py [ARG ...]
//   node tests/host/mpy/run.mjs [options] -c "python code" [ARG ...]
//
// Options:
//   --file PATH          copy a host file or directory (recursively) to /app/<basename>
//   --file PATH=DEST     copy it to /app/DEST instead (DEST is relative to /app)
//   --heapsize N[k|m]    initial MicroPython heap (default 2m; the VM grows it on demand,
//                        so this is not a model of the ESP32-S3's memory)
//   --pystack N          Python stack size passed to the loader (its default: 2048)
//
// The VM gets /app as working directory and as sys.path[0]; the entry script
// runs as __main__ with __file__ set to its /app path and sys.argv = [entry, ARG...].
// stdout/stderr of the Python code are streamed to this process's stdout/stderr.
// Exit status: 0 on success, the SystemExit code if the script calls sys.exit(),
// 1 (with the MicroPython traceback on stderr) if it raises, 2 on usage or
// loader errors.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const APP = "/app";
const SKIP_NAMES = new Set(["__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"]);

function usage(msg) {
  if (msg) process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node run.mjs [--file PATH[=DEST]]... [--heapsize N[k|m]] [--pystack N] " +
      "(ENTRY.py | -c CODE) [ARG ...]\n",
  );
  process.exit(2);
}

function parseSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) usage(`bad size: ${text}`);
  const mult = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return parseInt(m[1], 10) * mult;
}

function parseArgs(argv) {
  const opts = { files: [], heapsize: 2 * 1024 * 1024, pystack: undefined, code: null, entry: null, args: [] };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === "--file" || a === "-f") {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts.files.push(argv[i + 1]);
      i += 2;
    } else if (a === "--heapsize") {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts.heapsize = parseSize(argv[i + 1]);
      i += 2;
    } else if (a === "--pystack") {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts.pystack = parseSize(argv[i + 1]);
      i += 2;
    } else if (a === "-c") {
      if (i + 1 >= argv.length) usage("-c needs code");
      opts.code = argv[i + 1];
      opts.args = argv.slice(i + 2);
      return opts;
    } else if (a === "-h" || a === "--help") {
      usage();
    } else if (a.startsWith("-")) {
      usage(`unknown option ${a}`);
    } else {
      opts.entry = a;
      opts.args = argv.slice(i + 1);
      return opts;
    }
  }
  usage("no entry script given");
  return opts;
}

// Create every missing directory of an absolute VM path.
function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.mkdir(cur);
    } catch (err) {
      // EEXIST is fine; anything else (e.g. a file in the way) is reported.
      const st = FS.analyzePath(cur);
      if (!st.exists || !FS.isDir(st.object.mode)) throw err;
    }
  }
}

function copyIn(FS, hostPath, vmPath) {
  const st = fs.statSync(hostPath);
  if (st.isDirectory()) {
    mkdirs(FS, vmPath);
    for (const name of fs.readdirSync(hostPath).sort()) {
      if (SKIP_NAMES.has(name) || name.endsWith(".pyc")) continue;
      copyIn(FS, path.join(hostPath, name), vmPath + "/" + name);
    }
  } else {
    mkdirs(FS, path.posix.dirname(vmPath));
    FS.writeFile(vmPath, fs.readFileSync(hostPath));
  }
}

function vmTarget(spec) {
  const eq = spec.indexOf("=");
  const host = eq >= 0 ? spec.slice(0, eq) : spec;
  let dest = eq >= 0 ? spec.slice(eq + 1) : path.basename(path.resolve(host));
  dest = path.posix.normalize(dest.replace(/\\/g, "/")).replace(/^\/+/, "");
  if (dest === "" || dest === "." || dest.startsWith("..")) usage(`bad destination in ${spec}`);
  return { host, vm: APP + "/" + dest };
}

function loadModule() {
  // Resolve the npm package from this file's location (node_modules at the repo root).
  const require = createRequire(import.meta.url);
  let pkgDir;
  try {
    pkgDir = path.dirname(require.resolve("@micropython/micropython-webassembly-pyscript/package.json"));
  } catch {
    process.stderr.write(
      "run.mjs: @micropython/micropython-webassembly-pyscript is not installed (run `make node_modules`)\n",
    );
    process.exit(2);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  return import(path.join(pkgDir, pkg.main || "micropython.mjs"));
}

// Python side of the harness: runs the entry as __main__ and reports the exit
// status through a global, so that SystemExit codes and tracebacks are exact.
const BOOTSTRAP = `
import sys
import os
sys.path.insert(0, ${JSON.stringify(APP)})
os.chdir(${JSON.stringify(APP)})

def _mp_run(path, argv):
    sys.argv[:] = argv
    with open(path) as f:
        src = f.read()
    g = {"__name__": "__main__", "__file__": path}
    try:
        exec(compile(src, path, "exec"), g)
    except SystemExit as e:
        code = e.args[0] if e.args else 0
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException as e:
        sys.print_exception(e, sys.stderr)
        return 1
    return 0
`;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { loadMicroPython } = await loadModule();

  const loaderOpts = {
    heapsize: opts.heapsize,
    linebuffer: true,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  };
  if (opts.pystack !== undefined) loaderOpts.pystack = opts.pystack;
  const mp = await loadMicroPython(loaderOpts);
  const FS = mp.FS;

  mkdirs(FS, APP);
  for (const spec of opts.files) {
    const { host, vm } = vmTarget(spec);
    if (!fs.existsSync(host)) usage(`no such file: ${host}`);
    copyIn(FS, host, vm);
  }

  let entryVm;
  if (opts.code !== null) {
    entryVm = APP + "/__main_c__.py";
    FS.writeFile(entryVm, opts.code);
  } else {
    if (!fs.existsSync(opts.entry)) usage(`no such entry script: ${opts.entry}`);
    entryVm = APP + "/" + path.basename(opts.entry);
    copyIn(FS, opts.entry, entryVm);
  }

  let rc;
  try {
    mp.runPython(BOOTSTRAP);
    mp.globals.set("_mp_entry", entryVm);
    mp.globals.set("_mp_argv", JSON.stringify([entryVm, ...opts.args]));
    mp.runPython("import json\n_mp_rc = _mp_run(_mp_entry, json.loads(_mp_argv))\n");
    rc = mp.globals.get("_mp_rc");
  } catch (err) {
    // Only reached if the harness itself fails (e.g. out of memory while starting).
    process.stderr.write(`run.mjs: ${err && err.message ? err.message : err}\n`);
    rc = 1;
  }
  // Flush a last line that had no newline.
  const mod = mp._module;
  for (const [buf, stream] of [
    [mod._stdoutBuffer, process.stdout],
    [mod._stderrBuffer, process.stderr],
  ]) {
    if (buf && buf.length) {
      stream.write(Buffer.from(buf));
      buf.length = 0;
    }
  }
  // Let pending pipe writes drain, then exit: a handle the VM leaves open must not keep node
  // alive after the script ended (seen once under load in CI: every line printed, then a 60 s
  // timeout). The write callbacks run once everything before them is flushed.
  const code = typeof rc === "number" ? rc & 0xff : 1;
  process.exitCode = code;
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

if (path.resolve(fileURLToPath(import.meta.url)) === path.resolve(process.argv[1] || "")) {
  main().catch((err) => {
    process.stderr.write(`run.mjs: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 2;
  });
}
