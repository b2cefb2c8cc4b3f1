"""Write a copy of a model file with some of its network config changed, its weights as they are.

    python tools/set_config.py models/n2n-photo-level.safetensors estimator_window=96 -o runs/photo-level-w96.safetensors
    python tools/set_config.py runs/r7.safetensors --aux-prefilter mc-aux-prefilter -o runs/r7-pf.safetensors

For settings that change how a network runs, not what it learnt (a level estimator's reading
window), or the buffer prefilter a render model runs first (`--aux-prefilter NAME`, "" for none).
Values are JSON (`96`, `"global"`, `[1, 3]`). The new file rebuilds and loads as any
model file does (so a value the weights cannot take is refused), and its training record gains
an `edits` entry saying what was changed; an existing output is replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restore.api import load, model_path  # noqa: E402
from restore.archs.registry import build  # noqa: E402
from restore.modelfile import ModelFileError, load_model_file, save_model_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the model file to copy")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="config fields and their JSON values")
    parser.add_argument("--aux-prefilter", help='the bundled buffer prefilter the model runs first ("": none)')
    parser.add_argument("-o", "--output", type=Path, required=True, help="the new model file")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    args = parser.parse_args()
    if not args.settings and args.aux_prefilter is None:
        parser.error("give KEY=VALUE settings or --aux-prefilter")
    network, info = load_model_file(args.model)
    changes = {}
    for setting in args.settings:
        key, _, value = setting.partition("=")
        changes[key] = json.loads(value)
    config = {**info.config, **changes}
    edit: dict[str, object] = {"config": changes, "from": args.model.name}
    prefilter = info.aux_prefilter if args.aux_prefilter is None else args.aux_prefilter
    if prefilter != info.aux_prefilter:
        edit["aux_prefilter"] = prefilter
    training = {**info.training, "edits": [*info.training.get("edits", []), edit]}
    edited = replace(info, config=config, aux_prefilter=prefilter, training=training)
    if prefilter:  # a prefilter that cannot be found is refused before anything is written
        load(model_path(prefilter, beside=args.output))
    target = build(edited.architecture, config)  # the same weights in a network built from the new config
    target.load_state_dict(network.state_dict(), strict=True)
    save_model_file(args.output, target, edited, overwrite=args.overwrite)
    load(args.output)  # refuses what the config and weights cannot make together
    edits = [f"{k}={json.dumps(v)}" for k, v in changes.items()]
    if "aux_prefilter" in edit:
        edits.append(f"buffer prefilter {prefilter or 'none'}")
    print(f"wrote {args.output}: {args.model.name} with {', '.join(edits) or 'nothing changed'}")


if __name__ == "__main__":
    try:
        main()
    except (ModelFileError, ValueError) as err:  # one line, as the CLI says it
        sys.exit(f"error: {err}")
