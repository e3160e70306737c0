"""``zerodce export onnx``: write a model as an ONNX graph with dynamic batch, height and width.

The graph is checked in onnxruntime against PyTorch before the file is written.
The default ``--graph curves`` is what ``--backend onnxruntime`` runs;
``--graph enhanced`` is a self-contained image-to-image graph for other
runtimes. Exit code 0 on success, 1 if the export failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zerodce.cli import CommandError
from zerodce.cli._options import add_model_options, int_range
from zerodce.export import DEFAULT_OPSET, GRAPHS, ONNX_TOLERANCE, export_onnx
from zerodce.models import create_model

EXAMPLES = """\
examples:
  zerodce export onnx -o zero_dce_pp.onnx
  zerodce export onnx --model zero_dce --scale-factor 4 -o zero_dce_s4.onnx
  zerodce export onnx --graph enhanced -o standalone.onnx
  zerodce enhance photos/ -o out/ --backend onnxruntime --checkpoint zero_dce_pp.onnx
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX (checked in onnxruntime)",
        description="Export a model to ONNX: input 'image' (B, 3, H, W) float in [0, 1], any batch and size; "
                    f"the graph is checked in onnxruntime against PyTorch (max abs difference <= {ONNX_TOLERANCE:g}).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=["onnx"], help="export format")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    add_model_options(parser, device=False)
    parser.add_argument("--scale-factor", type=int_range(1), metavar="K",
                        help="estimate curves on a 1/K downscale (default: the model's: 12 zero_dce_pp, 1 zero_dce)")
    parser.add_argument("--graph", choices=GRAPHS, default="curves",
                        help="graph output: 'curves' at the network's resolution (what --backend onnxruntime runs) "
                             "or 'enhanced', a self-contained image-to-image graph (default: %(default)s)")
    parser.add_argument("--opset", type=int_range(13), default=DEFAULT_OPSET, metavar="N",
                        help="ONNX opset version (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if path.is_dir():
        raise CommandError(f"{path} is a folder; give a file name, e.g. {path / (args.model + '.onnx')}")
    if not path.parent.is_dir():
        raise CommandError(f"cannot write {path}: folder {path.parent} does not exist")
    kwargs = {} if args.scale_factor is None else {"scale_factor": args.scale_factor}
    model = create_model(args.model, pretrained=args.checkpoint is None, checkpoint=args.checkpoint, **kwargs)
    difference = export_onnx(model, path, graph=args.graph, opset=args.opset)
    print(f"wrote {path} ({args.model}, scale factor {model.scale_factor}, graph '{args.graph}'); "
          f"onnxruntime matches PyTorch within {difference:.1e}")
    return 0
