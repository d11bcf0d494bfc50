"""The `tokcore` command.

Exit status: 0 on success, 2 on a usage, config or input error (one line on stderr, no
traceback unless --debug), 1 on a runtime failure. `plugins` and `list` read package
metadata only; they never import torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Callable, Sequence

from tokcore import registry
from tokcore._version import __version__
from tokcore.errors import ConfigError, TokcoreError
from tokcore.registry.names import did_you_mean


class UsageError(TokcoreError):
    """A command line argparse or a command rejects (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    intermixed = False  # a command whose key=value arguments may follow its options
    _parsing = False

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{message} (see: {self.prog} --help)")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        if not self.intermixed or self._parsing:
            return super().parse_known_args(args, namespace)
        self._parsing = True  # the intermixed parse calls back here for its two passes
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def _print_table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + ("  " if widths else "") + r[-1])


# -- plugins -----------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    reg = registry.current()
    plugins = reg.plugins()
    failures: dict[str, list[str]] = {}
    if args.check:
        from tokcore.registry.hooks import plugin_manager

        for p in plugins:
            if not p.enabled:
                continue
            for e in p.entries:
                try:
                    reg.get(e.kind, e.qualified_name)
                except TokcoreError as err:
                    failures.setdefault(p.dist, []).append(str(err))
        for f in plugin_manager(reg)[1]:
            failures.setdefault(f.dist, []).append(f"hook module {f.module} failed to import: {f.error}")
        for p in plugins:
            if p.dist in failures and p.status == "ok":
                p.status, p.reason = "failed", failures[p.dist][0]
    if args.json:
        print(json.dumps([{"distribution": p.dist, "version": p.version, "status": p.status,
                           "reason": p.reason, "components": p.components(), "hooks": p.hooks,
                           "errors": failures.get(p.dist, [])} for p in plugins], indent=2))
    else:
        rows = []
        for p in plugins:
            parts = [f"{registry.plural(k)}: {', '.join(v)}" for k, v in p.components().items()]
            parts += [f"hooks: {', '.join(p.hooks)}"] if p.hooks else []
            rows.append([p.dist, p.version, p.status, "; ".join(parts) or "(no components)"])
            rows += [["", "", "", f"  {why}"] for why in ([p.reason] if p.reason else []) + failures.get(p.dist, [])[1:]]
        _print_table(rows)
    return 1 if args.check and any(p.status in ("failed", "incompatible") for p in plugins) else 0


# -- list, info ----------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    reg = registry.current()
    kinds = [registry.normalize_kind(args.kind)] if args.kind else list(registry.KINDS)
    rows = []
    for kind in kinds:
        names = set(reg.list(kind, args.pattern))
        for e in sorted(reg.entries(kind), key=lambda e: e.name):
            shown = e.name if e.name in names else e.qualified_name
            if shown in names:
                rows.append({"kind": kind, "name": shown, "distribution": e.provider.dist,
                             "version": e.provider.version, "target": e.target})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table([[r["kind"], r["name"], f"{r['distribution']} {r['version']}".strip()] for r in rows])
    off = [p for p in reg.plugins() if not p.enabled]
    if off:
        print(f"tokcore: note: {len(off)} plugin(s) not loaded ({', '.join(p.dist for p in off)}); "
              "see: tokcore plugins", file=sys.stderr)
    if not rows:
        # Nothing listed is never silent. A pattern that matches nothing is an input error
        # (exit 2, like `tokcore info` of an unknown name), so a script notices a typo; the
        # --json output is still valid JSON ([]).
        what = registry.plural(kinds[0]) if args.kind else "components"
        if not args.pattern:
            print(f"tokcore: note: no {what} are installed; see: tokcore plugins", file=sys.stderr)
            return 0
        existing = sorted({n for k in kinds for n in reg.list(k)})
        guess = None if any(c in args.pattern for c in "*?[") else did_you_mean(args.pattern, existing)
        shown = ", ".join(existing[:12]) + (", ..." if len(existing) > 12 else "")
        raise UsageError(f"no {what} match '{args.pattern}'" + (f" (did you mean '{guess}'?)" if guess else "")
                         + (f"; {what}: {shown}" if existing else f"; no {what} are installed"))
    return 0


# Config sections that are settings rather than components: `tokcore info SECTION` shows
# their fields like a component's parameters (the class's signature and `Args:` docs).
SETTINGS = ("train",)


def _settings(section: str) -> type:
    from tokcore.config.spec import TrainSettings

    return {"train": TrainSettings}[section]


def cmd_info(args: argparse.Namespace) -> int:
    from tokcore.registry.params import summary

    section = args.kind.strip().lower()
    if section in SETTINGS:
        if args.name is not None:
            raise UsageError(f"'{section}' is a config section, not a component kind; write: tokcore info {section}")
        cls = _settings(section)
        print(f"settings '{section}:' of a config ({cls.__module__}.{cls.__name__})\n")
        print(summary(cls) or "(no description)")
        _print_params(cls, heading="fields")
        return 0
    reg = registry.current()
    kind = registry.normalize_kind(args.kind)
    if args.name is None:
        raise UsageError(f"the following arguments are required: name (one of: tokcore list {registry.plural(kind)})")
    entry = reg.entry(kind, args.name)
    cls = reg.get(kind, args.name)
    print(f"{kind} '{entry.name}' from {entry.provider} ({entry.target})\n")
    print(summary(cls) or "(no description)")
    _print_params(cls)
    return 0


def _print_params(cls: type, heading: str = "parameters") -> None:
    """The parameters (types, defaults, docs) of `cls(...)`, as `tokcore info` shows them."""
    from tokcore.registry.params import params_of

    params, var_kw = params_of(cls)
    print(f"\n{heading}:" if params else f"\n{heading}: none")
    for p in params:
        default = "required" if p.required else f"default {p.default!r}"
        print(f"  {p.name}: {p.type_name}, {default}" + (f"\n      {p.doc}" if p.doc else ""))
    if var_kw:
        print("  (and further keyword parameters, passed through)")


# -- config --------------------------------------------------------------------------------
def cmd_config(args: argparse.Namespace) -> int:
    from tokcore import config

    print(config.dump(config.load(args.config, args.overrides).data), end="")
    return 0


# -- train ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tokcore.config import sources
    from tokcore.config.spec import RunSpec

    output = Path(args.output or Path("runs") / sources.run_name(args.config))  # tok-gaze:quick -> tok-gaze-quick
    if args.resume:
        from tokcore.train.resume import resume_spec

        spec, notes = resume_spec(output, args.config, args.overrides)
        for note in notes:
            print(note, file=sys.stderr)
    else:
        spec = RunSpec.load(args.config, args.overrides)
    spec.require("model", "data")
    if args.dry_run:
        from tokcore.train.plan import dry_run

        print(dry_run(spec, args.nproc))
        return 0
    from tokcore.train.launch import launch

    metrics = launch(spec, output, resume=args.resume, nproc=args.nproc)
    shown = {k: v for k, v in metrics.items() if k.startswith(("val", "loss"))}
    from tokcore.train.log import format_metrics

    print("final: " + format_metrics(dict(sorted(shown.items()))))
    print(f"run: {output}  (checkpoints/, metrics.jsonl, tb/, samples/)")
    return 0


# -- tokenize, decode ----------------------------------------------------------------------
def _device_option(device: str) -> None:
    """A `--device` that asks for a GPU there is not, refused naming the option."""
    from tokcore.runtime.device import resolve_device

    try:
        resolve_device(device)
    except ConfigError as err:
        raise ConfigError(err.message, key="--device") from None


def _token_count(text: str) -> int | list[int]:
    """`--num-tokens K` or `LO:HI`."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1 or parts[0] > parts[-1]:
        raise argparse.ArgumentTypeError(f"'{text}' is not a token count K or a range LO:HI (1 <= LO <= HI)")
    return parts[0] if len(parts) == 1 else parts


def cmd_tokenize(args: argparse.Namespace) -> int:
    from tokcore.tokens.tokenize import Options, tokenize

    _device_option(args.device)

    formats = [f.strip() for spec in args.format for f in spec.split(",") if f.strip() and f.strip() != "store"]
    opts = Options(batch_size=args.batch_size, workers=args.workers, shard_samples=args.shard_samples,
                   device=args.device, precision=args.precision, latent_dtype=args.latent_dtype,
                   progress=not args.quiet, threads=args.threads)
    s = tokenize(args.checkpoint, args.output, args.overrides, formats=formats, nproc=args.nproc, options=opts,
                 num_tokens=args.num_tokens)
    from tokcore.tokens.tokenize import is_main_process

    if not is_main_process():
        return 0
    if s.already_complete:
        print(f"{s.output}: already complete ({s.samples} samples, {s.failed} failed); nothing to do")
    else:
        resumed = f", {s.resumed} from an earlier run" if s.resumed else ""
        print(f"tokenized {s.new} inputs in {s.seconds:.1f}s ({s.new / max(s.seconds, 1e-9):.1f}/s){resumed}: "
              f"{s.samples} samples in {s.output}, {s.failed} failed")
    for fmt, path in s.exports.items():
        print(f"export {fmt}: {path}")
    for f in s.failures[:10]:
        print(f"  failed {_failure(f)}")
    if len(s.failures) > 10:
        print(f"  ... and {len(s.failures) - 10} more (see {s.output}/manifest.json)")
    if s.failed > args.max_failed:
        raise TokcoreError(f"{s.failed} of {s.samples + s.failed} inputs failed and were skipped (recorded in "
                           f"{s.output}/manifest.json); pass --max-failed {s.failed} to accept them")
    return 0


def _failure(record: dict) -> str:
    """A failure record `{"key", "error"}` as one line naming the input once: the recorded
    error is a complete line that already names its input (`KEY: cannot load: ...`)."""
    key, error = str(record.get("key", "")), str(record.get("error", ""))
    return error if error.startswith(key) else f"{key}: {error}"


def cmd_decode(args: argparse.Namespace) -> int:
    from tokcore.tokens.decode import decode_store

    _device_option(args.device)

    n, files = decode_store(args.checkpoint, args.tokens, args.output, batch_size=args.batch_size,
                            limit=args.limit, device=args.device, options=_decode_options(args.options))
    print(f"decoded {n} samples into {args.output} ({files} files)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tokcore.eval.job import EvalOptions, evaluate, parse_features

    _device_option(args.device)
    # `--baselines jpeg data.size=48`: the list options take every word up to the next option,
    # overrides included; a KEY=VALUE word is an override wherever it stands
    overrides = list(args.overrides) + [w for w in (args.compare or []) + (args.baselines or []) if "=" in w]
    compare = [w for w in args.compare if "=" not in w]
    baselines = None if args.baselines is None else [w for w in args.baselines if "=" not in w]
    opts = EvalOptions(batch_size=args.batch_size, chunk_samples=args.chunk_samples, pictures=args.pictures,
                       seed=args.seed, device=args.device, threads=args.threads, progress=not args.quiet)
    evaluate(args.checkpoint, args.output, args.split, overrides, compare=compare, baselines=baselines,
             features=parse_features(args.features), nproc=args.nproc, options=opts, num_tokens=args.num_tokens)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tokcore.config import parse_overrides
    from tokcore.run.importing import import_run

    # `variant=DV8x16x16` is the importer's own parameter; a dotted key overrides the config
    params = parse_overrides([a for a in args.settings if "." not in a.partition("=")[0]]).data
    overrides = [a for a in args.settings if "." in a.partition("=")[0]]
    path, imported = import_run(args.name, args.source, args.output, params, overrides, config=args.config)
    for note in imported.notes:
        print(note)
    print(f"imported {args.source} ({len(imported.weights)} tensors) as {imported.config}: {path}")
    return 0


def _decode_options(pairs: list[str]) -> dict:
    """`decoder.KEY=VALUE` arguments as {KEY: value}, values parsed as YAML scalars."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("decoder.") or "." in key[len("decoder."):] or key == "decoder.":
            raise ConfigError(f"'{pair}' is not decoder.KEY=VALUE (a sampling option of the decoder, e.g. "
                              "decoder.seed=1)", key="decode")
        options[key[len("decoder."):]] = yaml.safe_load(value)
    return options


# commands that are gone, and what does their job now (one line, exit 2, instead of argparse's list)
REPLACED = {f"{m}-report": "tokcore eval --checkpoint RUN" for m in ("gaze", "camera", "depth", "rgb")}

BUILTIN: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _builtin(name: str, run: Callable[[argparse.Namespace], int], help: str) -> Callable:
    """Register the built-in command `name`, done by `run(args)`; the decorated function adds
    its arguments to the command's parser."""
    def wrap(configure: Callable[[argparse.ArgumentParser], None]) -> Callable:
        BUILTIN[name] = (help, configure, run)
        return configure
    return wrap


@_builtin("plugins", cmd_plugins, "installed plugin distributions, their components and whether they load")
def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true", help="import every component; exit 1 if any fails")


@_builtin("list", cmd_list, "registered components (from package metadata; imports nothing)")
def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", help="encoder(s), quantizer(s), decoder(s), loss(es), ...")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern on names, e.g. 'r*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@_builtin("info", cmd_info, "the description and parameters of one component, or the fields of the train: settings")
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", help="encoder(s), quantizer(s), decoder(s), loss(es), ...; or 'train' (the settings)")
    p.add_argument("name", nargs="?", help="the component's registry name (none for 'train')")


@_builtin("config", cmd_config, "print the fully resolved config")
def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("overrides", nargs="*", metavar="key.path=value")


@_builtin("train", cmd_train, "train a tokenizer from a config")
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("overrides", nargs="*", metavar="key.path=value")
    p.add_argument("--nproc", type=int, default=1, help="processes on this machine (gloo on CPU, NCCL on GPU)")
    p.add_argument("--output", metavar="DIR", help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="build everything, run one batch, print the plan")


@_builtin("tokenize", cmd_tokenize, "tokens for every sample of a dataset, into a resumable token store")
def _tokenize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a run directory or a checkpoint directory")
    p.add_argument("--output", required=True, metavar="DIR", help="the token store (resumed if a run was cut short)")
    p.add_argument("overrides", nargs="*", metavar="data.key=value",
                   help="dataset overrides of the checkpoint's data config (the split defaults to 'all')")
    p.add_argument("--format", action="append", default=[], metavar="F",
                   help="also export as npy, lmdb or wds (into OUTPUT/F/); repeat or comma-separate")
    p.add_argument("--nproc", type=int, default=1, help="processes on this machine (or launch with torchrun)")
    p.add_argument("--batch-size", type=int, default=64, help="samples per encoder call")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per process (default: chosen from the idle CPUs, or OMP_NUM_THREADS)")
    p.add_argument("--shard-samples", type=int, default=4096, help="samples per shard at most")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 autocast on a GPU, fp32 on CPU")
    p.add_argument("--latent-dtype", default="float32", choices=["float32", "float16"],
                   help="storage of continuous latents")
    p.add_argument("--max-failed", type=int, default=0, metavar="N",
                   help="exit 0 even if up to N inputs failed (default 0: any failure exits 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--num-tokens", type=_token_count, metavar="K|LO:HI",
                   help="variable-length tokenizers (titok): K tokens per sample, or a count drawn per sample")


@_builtin("decode", cmd_decode, "decode a token store back to files (images, videos, trajectories, .npy)")
def _decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="the tokenizer that made the tokens")
    p.add_argument("--tokens", required=True, metavar="DIR", help="a token store")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N samples")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("options", nargs="*", metavar="decoder.key=value",
                   help="sampling options of the decoder (a diffusion decoder's seed, steps, guidance_scale, ...)")


@_builtin("eval", cmd_eval, "measure a tokenizer on a split beside other tokenizers and baseline codecs")
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="the run to evaluate")
    p.add_argument("overrides", nargs="*", metavar="data.key=value", help="overrides of the run's data config")
    p.add_argument("--split", default="val", help="the split of the run's dataset (default: val)")
    p.add_argument("--output", metavar="DIR", help="the evaluation folder (default: RUN/eval-SPLIT; resumed)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN", help="other runs of the same modality, "
                   "on the same samples")
    p.add_argument("--baselines", nargs="+", metavar="NAME", help="baseline codecs (default: every one that "
                   "codes the modality; 'none' for none)")
    p.add_argument("--features", action="append", default=[], metavar="NAME=FILE",
                   help="weights of a feature network for a Fréchet distance (fid=pt_inception.pth, fvd=i3d.pt)")
    p.add_argument("--nproc", type=int, default=1, help="processes on this machine (or launch with torchrun)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per decoder call")
    p.add_argument("--chunk-samples", type=int, default=256, help="samples between two saves of the progress")
    p.add_argument("--pictures", type=int, default=8, help="samples shown in the report")
    p.add_argument("--seed", type=int, default=0, help="seeds decoders that sample noise")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads per process")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--num-tokens", type=_token_count, metavar="K|LO:HI",
                   help="variable-length tokenizers (titok): K tokens per sample (default: the most)")
@_builtin("import", cmd_import, "a pretrained tokenizer released elsewhere (Cosmos, DALL-E, ...) as a run directory")
def _import_args(p: argparse.ArgumentParser) -> None:
    p.intermixed = True  # type: ignore[attr-defined]  # `import NAME SOURCE --output DIR key=value`
    p.add_argument("name", help="the importer (tokcore list importers)")
    p.add_argument("source", help="the released file or folder")
    p.add_argument("--output", required=True, metavar="DIR", help="the run directory to write")
    p.add_argument("--config", metavar="FILE", help="another config of the same model (default: the importer's)")
    p.add_argument("settings", nargs="*", metavar="key=value",
                   help="importer parameters (variant=...) and, with a dotted key, config overrides")


def build_parser(with_plugins: bool) -> argparse.ArgumentParser:
    parser = _Parser(prog="tokcore", description="Train, run and extend neural tokenizers.")
    parser.add_argument("--version", action="version", version=f"tokcore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help, configure, run) in BUILTIN.items():
        p = sub.add_parser(name, help=help, description=help)
        configure(p)
        p.set_defaults(_tokcore_run=run)
    if with_plugins:
        from tokcore.registry.hooks import plugin_manager

        def register(name: str, help: str, configure: Callable, run: Callable) -> None:
            if name in BUILTIN:
                raise TokcoreError(f"a plugin tried to replace the built-in command '{name}'")
            p = sub.add_parser(name, help=help, description=help)
            configure(p)
            p.set_defaults(_tokcore_run=run)

        pm, failures = plugin_manager()
        for f in failures:
            print(f"tokcore: warning: plugin {f.dist}: {f.module} failed to import: {f.error}", file=sys.stderr)
        pm.hook.tokcore_register_commands(register=register)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug and "TOKCORE_DEBUG" not in os.environ:  # ranks of --nproc show their tracebacks too
        os.environ["TOKCORE_DEBUG"] = "1"
        try:
            return main([*argv, "--debug"])
        finally:
            del os.environ["TOKCORE_DEBUG"]
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in REPLACED:
        print(f"tokcore: error: '{command}' is now `{REPLACED[command]}`, one evaluation for every modality "
              "(docs/evaluation.md)", file=sys.stderr)
        return 2
    try:
        # plugin commands need the hook modules imported; built-in commands do not
        args = build_parser(with_plugins=command not in BUILTIN).parse_args(argv)
        if getattr(args, "_tokcore_run", None) is None:
            build_parser(with_plugins=True).print_help()
            return 2
        return int(args._tokcore_run(args) or 0)
    except TokcoreError as err:
        if debug:
            traceback.print_exc()
        print(f"tokcore: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokcore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tokcore list | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as err:  # a runtime failure: exit 1, traceback only when asked
        if debug:
            traceback.print_exc()
        print(f"tokcore: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
