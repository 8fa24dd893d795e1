"""Streaming readers, one per source format. Pure Python (no Beam), one record at a time.

=====================================  =====================================================
reader                                 source
=====================================  =====================================================
:func:`iter_vg_images`                 Visual Genome image_data.json
:func:`iter_vg_regions`                Visual Genome region_descriptions.json
:func:`iter_vg_objects`                Visual Genome objects.json
:func:`iter_vg_attributes`             Visual Genome attributes.json
:func:`iter_vg_relationships`          Visual Genome relationships.json
:func:`iter_coco_captions`             COCO captions JSON
:func:`iter_karpathy_captions`         Karpathy split JSON (dataset_coco / dataset_flickr30k)
:func:`iter_caption_tsv`               Conceptual-Captions-style TSV (caption, url)
:func:`iter_warc`                      WARC / WARC.gz responses (HTML pages, images)
:func:`iter_html_files`                a folder of saved HTML pages
:func:`iter_json_array`                any top-level JSON array, element by element
=====================================  =====================================================

Every reader takes ``on_error="raise"`` (malformed input raises :class:`ReaderError` naming
file, position, id and field) or ``on_error="yield"`` (a :class:`Malformed` takes the record's
place, for jobs that count rejections). Image references are keyed with :func:`image_key`.
"""

from corpora.readers.coco import Caption, iter_coco_captions, iter_karpathy_captions
from corpora.readers.common import (
    Malformed,
    OnError,
    ReaderError,
    Skipped,
    image_key,
    open_source,
    open_text,
)
from corpora.readers.htmlfiles import (
    HtmlFile,
    charset_from_content_type,
    iter_html_files,
    sniff_meta_charset,
)
from corpora.readers.jsonstream import JsonStreamError, iter_json_array
from corpora.readers.tsv import TsvCaption, iter_caption_tsv
from corpora.readers.vg import (
    VGImage,
    VGImageObjects,
    VGImageRegions,
    VGImageRelationships,
    VGObject,
    VGRegion,
    VGRelationship,
    iter_vg_attributes,
    iter_vg_images,
    iter_vg_objects,
    iter_vg_regions,
    iter_vg_relationships,
)
from corpora.readers.warc import WarcResponse, iter_warc

__all__ = [
    "Caption",
    "HtmlFile",
    "JsonStreamError",
    "Malformed",
    "OnError",
    "ReaderError",
    "Skipped",
    "TsvCaption",
    "VGImage",
    "VGImageObjects",
    "VGImageRegions",
    "VGImageRelationships",
    "VGObject",
    "VGRegion",
    "VGRelationship",
    "WarcResponse",
    "charset_from_content_type",
    "image_key",
    "iter_caption_tsv",
    "iter_coco_captions",
    "iter_html_files",
    "iter_json_array",
    "iter_karpathy_captions",
    "iter_vg_attributes",
    "iter_vg_images",
    "iter_vg_objects",
    "iter_vg_regions",
    "iter_vg_relationships",
    "iter_warc",
    "open_source",
    "open_text",
    "sniff_meta_charset",
]
