"""Evaluation: enhanced images against ground truth (PSNR, SSIM), and photos without one (LOE, noise, ...).

The pieces, each usable on its own, by module:

* **Pairing** (:mod:`.pairing`: :func:`dataset_dirs`, :func:`find_pairs`,
  :func:`match_folder`, :func:`find_photos`): low-light inputs and ground
  truth matched by file stem; photos without ground truth listed.
* **Scoring** (:mod:`.scoring`): methods (:data:`Method`: a model as
  ``zerodce enhance`` runs it, :func:`model_method`; the classical
  :func:`baseline_methods`; a folder of finished outputs, :func:`folder_method`)
  and :func:`evaluate`, every method on every pair, outputs compared as 8-bit
  RGB with :func:`zerodce.metrics.psnr` and :func:`zerodce.metrics.ssim`, and
  optionally on the ground truths as input (*well-exposed* scores).
* **No reference** (:mod:`.no_reference`): :func:`lightness_order_error`,
  :func:`noise_level`, :func:`mean_brightness`, :func:`clipped_fraction` and
  :func:`evaluate_no_reference`.
* **Reports** (:mod:`.reports`): :func:`format_table` and
  :func:`format_no_reference_table` (terminal and Markdown), :func:`to_json`,
  and :class:`ContactSheet` (input | outputs | ground truth, one row per image).

Example:
    >>> scores = MethodResult("x", [ImageScore("a", 20.0, 0.5), ImageScore("b", 30.0, 0.7)])
    >>> (scores.psnr, round(scores.ssim, 2))
    (25.0, 0.6)
"""

from zerodce.evaluate.no_reference import (LOE_SIDE, NO_REFERENCE_FIELDS, ImageCallback, NoReferenceEvaluation,
                                           NoReferenceResult, NoReferenceScore, clipped_fraction,
                                           evaluate_no_reference, lightness_order_error, mean_brightness,
                                           noise_level, score_image)
from zerodce.evaluate.pairing import (LAYOUTS, Pair, PairingError, dataset_dirs, find_photos, find_pairs,
                                      match_folder, natural_key)
from zerodce.evaluate.reports import (ContactSheet, format_no_reference_table, format_table, to_json, write_json,
                                      write_markdown, write_no_reference_markdown, write_text)
from zerodce.evaluate.scoring import (Evaluation, ImageScore, Method, MethodResult, PairCallback, baseline_methods,
                                      evaluate, folder_method, model_method, pooled_psnr, read_rgb8, run_methods,
                                      to_rgb8)

__all__ = [
    "LAYOUTS", "LOE_SIDE", "NO_REFERENCE_FIELDS", "ContactSheet", "Evaluation", "ImageCallback", "ImageScore",
    "Method", "MethodResult", "NoReferenceEvaluation", "NoReferenceResult", "NoReferenceScore", "Pair",
    "PairCallback", "PairingError", "baseline_methods", "clipped_fraction", "dataset_dirs", "evaluate",
    "evaluate_no_reference", "find_pairs", "find_photos", "folder_method", "format_no_reference_table",
    "format_table", "lightness_order_error", "match_folder", "mean_brightness", "model_method", "natural_key",
    "noise_level", "pooled_psnr", "read_rgb8", "run_methods", "score_image", "to_json", "to_rgb8", "write_json",
    "write_markdown", "write_no_reference_markdown", "write_text",
]
