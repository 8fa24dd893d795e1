"""The README.md written at the root of every generated sample corpus."""

from __future__ import annotations

from typing import Any

from corpora.sample.annotations import COCO_ID_OFFSET
from corpora.sample.photos import PHOTO_ID_BASE
from corpora.sample.records import JPEG_QUALITY
from corpora.sample.scenes import HEIGHT, WIDTH
from corpora.sample.vocab import ATTRIBUTES, BACKGROUND_NAMES, CLASSES, PART_NAMES, PREDICATES
from corpora.sample.web_assets import HOST
from corpora.sample.web_pages import RULES, TEXT_SOURCES

_TEMPLATE = """# The msp sample corpus

A small, fully synthetic-plus-packaged vision-language corpus made by `msp sample` for the demo
and the tests. Generated with `msp sample --out OUT --seed {seed} --num-scenes {num_scenes}`
(generator version {version}). The same seed and scene count give byte-identical files;
`manifest.json` lists every file with its size and SHA-256.

## Layout

```
README.md                          this file
manifest.json                      counts, seed, generator version, every file's size and sha256
images/<id>.jpg                    {num_images} images: {num_scenes} scenes + {num_photos} photos
vg/image_data.json                 [{{image_id, url, width, height, coco_id, flickr_id}}]
vg/region_descriptions.json        [{{id, regions: [{{region_id, image_id, phrase, x, y, width, height}}]}}]
vg/objects.json                    [{{image_id, objects: [{{object_id, x, y, w, h, names, synsets}}]}}]
vg/attributes.json                 [{{image_id, attributes: [{{...object..., attributes: [...]}}]}}]
vg/relationships.json              [{{image_id, relationships: [{{relationship_id, predicate, synsets,
                                     subject: {{...object..., name}}, object: {{...object..., name}}}}]}}]
coco/captions_{{train,val,test}}.json COCO captions: images [{{id, file_name, width, height}}],
                                   annotations [{{id, image_id, caption}}]
coco/dataset_karpathy.json         {{dataset, images: [{{filepath, filename, imgid, split, cocoid,
                                     sentids, sentences: [{{raw, tokens, imgid, sentid}}]}}]}}
cc/captions.tsv                    caption<TAB>image path (relative to cc/), no header
web/crawl-NNNNN.warc.gz            the crawl: warcinfo, then request/response records
web/html/*.html                    saved pages (not in the WARC files)
web/img/...                        images pages link to that the crawl did not store
ground_truth/lait.jsonl            one line per (page, image) candidate: expected LAIT outcome
ground_truth/pages.jsonl           one line per page
ground_truth/filters.json          per LAIT rule: which candidates it must reject
ground_truth/cc.json               valid and malformed lines of cc/captions.tsv
```

Counts: {counts}

## Images

The image key everywhere is the file stem of `images/<id>.jpg`, the VG `image_id` as text.

- **Scenes** `1001` .. `{last_scene}`: {width}x{height} JPEG (quality {quality}) drawn with Pillow:
  a background ({stuff}) and 2-5 objects. Classes: {classes}. Each has a colour and a size
  (small/large); attributes used: {attributes}. Parts annotated as objects of their own:
  {parts}. Object boxes are the tight boxes of the pixels drawn for each object.
- **Photos** `{photo_base}`..: real photos shipped inside installed packages, with
  hand-drawn approximate boxes (chelsea, 300 px high, is not used on the web pages):
{photos}

## Visual Genome files

Boxes are `x, y` (top-left pixel) plus `w, h` (regions: `width, height`) in pixels of the image.
Object names and attributes are entries of the VG detector vocabulary (1600 objects, 400
attributes); predicates are VG relation synonyms: {predicates} (photos also use `wearing`).
Scene relationships come from geometry: supported things are `on` what carries them, ground
things `on` the ground, sky things `in` the sky, parts are what their object `has`; pairs of
things are `next to` / `near` when close, else `left of` / `right of`, or `above` / `below`
(`behind` / `in front of` between two things standing on the ground: higher means farther).
Things (2-5 per scene) never overlap, except a thing standing on a table or box.
Region phrases mix attribute phrases ("small red ball"), relation phrases ("red ball next to blue
car") and phrases with verbs: finite verbs with auxiliaries ("the dog is standing on the grass"),
participles ("bird flying in the sky"), participles as adjectives ("parked car") and gerund nouns
("dining table"). Object ids start at 1000000, region ids at 2000000, relationship ids at 3000000.
`url` is a placeholder; read the image from `images/<image_id>.jpg`.

## COCO, Karpathy and CC files

`coco_id = image_id + {coco_offset}`; `file_name` is `<image_id>.jpg` under `images/`. Five captions per
image. Splits: scenes shuffled with the seed and cut 80/10/10 (train {n_train}, val {n_val}, test
{n_test}); photos are all in train (web pages show them). Every image is in exactly one split and
the Karpathy file uses the same splits. `cc/captions.tsv` has {cc_lines} lines from training scenes;
lines {cc_bad} are malformed on purpose (see `ground_truth/cc.json`: `no_tab`, `empty_caption`,
`extra_field`, and `missing_image` for a well-formed line whose file does not exist).

## The web crawl

All URLs are under `{host}/`. Pages live at `/pages/NAME.html` (inside the WARC files) or
`/html/NAME.html` (saved files `web/html/NAME.html`, each with a `<link rel="canonical">` giving that
URL). Images are served three ways:

- `/media/...` and `/px/...`: response records inside the WARC files. An image shown on several
  pages is stored once, in the file of the first page that shows it: join images to pages by URL
  across all WARC files.
- `/img/NAME`: not in the crawl; a fetcher must resolve `{host}/img/NAME` to the file
  `web/img/NAME` (map the prefix `{host}/img/` to the folder `web/img/`). Saved pages refer
  to them as `../img/NAME`, which also resolves on disk relative to `web/html/`.
- a few `/img/...` URLs have no file at all: fetching them fails (a `broken_image` case).

The URL's file stem is the image key (`/media/1007.jpg` shows scene 1007; copies of one image
under other folders such as `/media/v2/1007.jpg` keep the stem). `<img src>` is written absolute,
root-relative (`/media/...`) or relative (`../media/...`): resolve it against the page URL.
Pages declare their charset in the HTTP header, in `<meta charset>`, or both; one page is
windows-1252 declared only in its HTTP header (accented text), one is sent with
`Content-Encoding: gzip` (warcio's `content_stream()` decodes it). {num_pages} pages, {num_warc}
WARC files, {num_html} saved pages; {num_candidates} candidates, {num_kept} expected kept.

## LAIT ground truth

`ground_truth/lait.jsonl` has one JSON object per `<img>` on a page (a candidate):

| field | meaning |
|---|---|
| `candidate_id` | `c0001` ... in page order |
| `page_url`, `image_url` | the page and the image URL resolved against it |
| `image_src` | the `src` attribute as written |
| `image_key` | file stem of the image URL (a scene/photo id, or `logo`, `pixel` ...) |
| `text` | the expected text: the first of {sources} that is not boilerplate (else the first non-empty one), HTML entities decoded, whitespace collapsed; `""` when none |
| `text_source` | which of those it came from, or null |
| `expected` | `kept` or `rejected` |
| `reason` | null, or the first rule that rejects it, in the order below |
| `also` | later rules that would also reject it |
| `duplicate_group` | id in `filters.json` `duplicate_groups` when the same bytes appear in several candidates that reach the last step |
| `note`, `lang` | what the case is; the page's language |
| `page_source`, `page_file` | `warc` or `html`, and the WARC or HTML file holding the page |
| `image_source`, `image_file` | `warc`, `file` or `missing`, and the file holding the bytes |
| `image_sha256`, `image_width`, `image_height` | of the bytes served (null when none decode) |

"Surrounding text" is the text of the `<img>`'s parent element only (for `<p>text <img></p>`);
text elsewhere on the page does not count. Rules, in pipeline order (the first that applies is
the `reason`):

{rules}

`ground_truth/filters.json` gives, for each rule, `must_reject` (candidates whose reason it is)
and `also_matches` (candidates an earlier rule already rejects), the list of kept candidates,
the duplicate groups with the kept member, and the pages without images (they have no
candidates). `ground_truth/pages.jsonl` lists every page: kind, language, where it is stored,
charset (and where it is declared), content encoding and its candidates.
"""


def render(manifest: dict[str, Any], web: dict[str, Any], cc: dict[str, Any]) -> str:
    """README.md text for a corpus described by its manifest (counts and photos)."""
    counts = manifest["counts"]
    photos = "\n".join(
        f"  - `{p['image_id']}` {p['name']}: {p['credit']}" for p in manifest["photos"]
    )
    rules = "\n".join(f"{n}. `{r}`: {RULES[r]}" for n, r in enumerate(RULES, 1))
    return _TEMPLATE.format(
        seed=manifest["seed"],
        num_scenes=manifest["num_scenes"],
        version=manifest["generator_version"],
        num_images=counts["images"],
        num_photos=counts["photos"],
        last_scene=1000 + manifest["num_scenes"],
        width=WIDTH,
        height=HEIGHT,
        quality=JPEG_QUALITY,
        stuff=", ".join(BACKGROUND_NAMES),
        classes=", ".join(CLASSES),
        attributes=", ".join(ATTRIBUTES),
        parts=", ".join(PART_NAMES),
        photo_base=PHOTO_ID_BASE,
        photos=photos,
        predicates=", ".join(PREDICATES),
        coco_offset=COCO_ID_OFFSET,
        n_train=counts["coco_train_images"],
        n_val=counts["coco_val_images"],
        n_test=counts["coco_test_images"],
        cc_lines=cc["lines"],
        cc_bad=", ".join(str(m["line"]) for m in cc["malformed"]),
        host=HOST,
        num_pages=web["pages"],
        num_warc=web["warc_files"],
        num_html=web["html_pages"],
        num_candidates=counts["lait_candidates"],
        num_kept=counts["lait_kept"],
        sources=", ".join(f"`{s}`" for s in TEXT_SOURCES),
        rules=rules,
        counts=", ".join(f"{k} {v}" for k, v in counts.items()),
    )
