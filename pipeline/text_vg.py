"""Visual Genome region descriptions per image, joined with image_data.json, for Beam jobs.

:class:`ReadVGImages` yields one dict per image that has regions::

    {"image_id": "1001", "coco_id": 391895 | None, "flickr_id": int | None,
     "regions": [(region_id, phrase), ...]}   # file order

and a dead-letter output. Accounting unit: one region (a phrase of an image). An input is each
region the reader delivers, each region it rejects alone (null ``region_id``, missing or blank
``phrase``...), each image element it rejects whole (null image id, no region list) and each image
whose region list is empty. Images whose COCO or Flickr twin is held out (see
:mod:`pipeline.text_splits`) have every region rejected at the step ``heldout``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import apache_beam as beam

from corpora.readers.common import Malformed
from corpora.readers.vg import VGImageRegions, iter_vg_images, iter_vg_regions
from pipeline import common

logger = logging.getLogger(__name__)

REGIONS_FILE = "region_descriptions.json"
IMAGES_FILE = "image_data.json"
OBJECTS_FILE = "objects.json"


def vg_file(vg_dir: str | Path, name: str, required: bool = True) -> str | None:
    """``vg_dir/name`` or its ``.gz``; None (or FileNotFoundError when ``required``) if absent."""
    for candidate in (Path(vg_dir) / name, Path(vg_dir) / f"{name}.gz"):
        if candidate.is_file():
            return str(candidate)
    if required:
        raise FileNotFoundError(f"{name} not found in {vg_dir}")
    return None


class _ReadRegions(beam.DoFn):
    """Stream region_descriptions.json; one ``(image_id, regions)`` per image with regions."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        bad_items = 0  # regions of the coming image record that were rejected alone
        for item in iter_vg_regions(path, on_error="yield"):
            if isinstance(item, Malformed):
                self.counters.inc("inputs")
                bad_items += item.sub_index is not None
                yield common.reject(item.input_id, "read", item.describe())
            elif item.regions:
                self.counters.inc("inputs", len(item.regions))
                yield _regions(item)
                bad_items = 0
            elif not bad_items:
                self.counters.inc("inputs")
                yield common.reject(item.key, "read", "image has an empty region list")
            else:  # every region was rejected alone: the image adds no input of its own
                bad_items = 0


def _regions(item: VGImageRegions) -> tuple[str, list[tuple[int, str]]]:
    return item.key, [(r.region_id, r.phrase) for r in item.regions]


class _ReadImageMeta(beam.DoFn):
    """Stream image_data.json: ``(image_id, (coco_id, flickr_id))``. Metadata, not inputs."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def process(self, path: str):
        bad = 0
        for item in iter_vg_images(path, on_error="yield"):
            if isinstance(item, Malformed):
                bad += 1
                logger.warning("image_data: %s", item.describe())
                continue
            yield str(item.image_id), (item.coco_id, item.flickr_id)
        if bad:
            beam.metrics.Metrics.counter(self.namespace, "image_data_malformed").inc(bad)


class _JoinMeta(beam.DoFn):
    """Attach coco/flickr ids; reject every region of an image whose twin is held out."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, element, heldout: dict[str, str]):
        image_id, grouped = element
        parts = sorted(grouped["regions"], key=lambda regions: regions[0][0])
        if not parts:  # image_data entry of an image without regions: not an input
            return
        regions = [r for part in parts for r in part]  # an image listed twice: both parts
        metas = list(grouped["meta"])
        coco_id, flickr_id = metas[0] if metas else (None, None)
        twins = [f"coco:{coco_id}"] * (coco_id is not None)
        twins += [f"flickr:{flickr_id}"] * (flickr_id is not None)
        held = [(key, heldout[key]) for key in twins if key in heldout]
        if held:
            key, split = held[0]
            for region_id, _ in regions:
                reason = f"image {image_id} is {key}, an image of the {split} split"
                yield common.reject(f"{image_id}/{region_id}", "heldout", reason)
            return
        yield {"image_id": image_id, "coco_id": coco_id, "flickr_id": flickr_id, "regions": regions}


class ReadVGImages(beam.PTransform):
    """VG regions per image with coco/flickr ids; returns ``(images, rejects)``.

    ``heldout``: an optional PCollection of ``(held-out key, split)`` (see
    :class:`pipeline.text_splits.HeldOutKeys`); with one, image_data.json must exist, since
    without the twins' ids held-out images could not be excluded.
    """

    def __init__(self, vg_dir: str, namespace: str, heldout=None) -> None:
        super().__init__()
        self.regions_path = vg_file(vg_dir, REGIONS_FILE)
        self.images_path = vg_file(vg_dir, IMAGES_FILE, required=heldout is not None)
        self.namespace = namespace
        self.heldout = heldout
        if self.images_path is None:
            logger.warning(
                "%s not in %s: rows get no coco_id",
                IMAGES_FILE,
                vg_dir,
            )

    def expand(self, pbegin):
        regions = (
            pbegin
            | "RegionsPath" >> beam.Create([self.regions_path])
            | "ReadRegions"
            >> beam.ParDo(_ReadRegions(self.namespace)).with_outputs(common.REJECTS, main="images")
        )
        meta_paths = [self.images_path] if self.images_path else []
        meta = (
            pbegin
            | "ImageDataPath" >> beam.Create(meta_paths)
            | "ReadImageData" >> beam.ParDo(_ReadImageMeta(self.namespace))
        )
        heldout = self.heldout
        if heldout is None:
            heldout = pbegin | "NoHeldOut" >> beam.Create([])
        joined = (
            {"regions": regions.images, "meta": meta}
            | "JoinImageData" >> beam.CoGroupByKey()
            | "AttachIds"
            >> beam.ParDo(
                _JoinMeta(self.namespace), heldout=beam.pvalue.AsDict(heldout)
            ).with_outputs(common.REJECTS, main="images")
        )
        rejects = (regions.rejects, joined.rejects) | "VGRejects" >> beam.Flatten()
        return joined.images, rejects
