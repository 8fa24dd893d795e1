"""Real photos shipped inside installed packages, with hand-written annotations.

scikit-image bundles a few photos with ``skimage.data`` (only bundled files are used; nothing is
downloaded), scikit-learn ships ``china.jpg`` and ``flower.jpg`` and matplotlib ships
``grace_hopper.jpg``. Each photo gets a VG-style id, approximate object boxes
drawn by hand (names and attributes from the VG detector vocabulary), region phrases, five
captions and the alt text its web page uses. A photo whose package is missing is skipped, and the
manifest lists what was included.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from corpora.sample.records import JPEG_QUALITY, XYWH, AnnObject, ImageRecord, Relation

logger = logging.getLogger(__name__)

PHOTO_ID_BASE = 90001  # photo ids: 90001, 90002 ... (scene ids start at 1001)


def _package_file(package: str, relpath: str) -> Callable[[], Image.Image]:
    """A loader for a data file inside an installed package, found without importing it.

    These are the very files ``skimage.data``, ``sklearn.datasets.load_sample_image`` and
    ``matplotlib.cbook.get_sample_data`` return; reading them directly keeps the generator free
    of those packages' import time (seconds for scikit-learn).
    """

    def load() -> Image.Image:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {package} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / relpath
        with Image.open(path) as image:
            return image.convert("RGB")

    return load


def _skimage(name: str) -> Callable[[], Image.Image]:
    return _package_file("skimage", f"data/{name}")


def _sklearn(name: str) -> Callable[[], Image.Image]:
    return _package_file("sklearn", f"datasets/images/{name}")


def _matplotlib(name: str) -> Callable[[], Image.Image]:
    return _package_file("matplotlib", f"mpl-data/sample_data/{name}")


@dataclass(frozen=True)
class Photo:
    """A packaged photo and its annotations (boxes are VG x, y, w, h in the photo's pixels)."""

    name: str
    credit: str
    load: Callable[[], Image.Image]
    objects: tuple[tuple[str, XYWH, tuple[str, ...]], ...]
    relations: tuple[tuple[int, str, int], ...]
    regions: tuple[tuple[str, XYWH], ...]
    captions: tuple[str, ...]
    alt: str  # the description its web page gives it


PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        "scikit-image skimage.data.astronaut (NASA, public domain)",
        _skimage("astronaut.png"),
        (
            ("woman", (20, 15, 345, 497), ("smiling",)),
            ("face", (170, 60, 115, 105), ()),
            ("hair", (150, 15, 152, 100), ("blonde", "short")),
            ("suit", (20, 150, 345, 362), ("orange",)),
            ("helmet", (275, 345, 230, 167), ("white", "shiny")),
            ("flag", (0, 0, 100, 420), ("striped", "red")),
            ("patch", (133, 348, 78, 76), ("round", "purple")),
            ("toy", (352, 0, 120, 285), ("white",)),
        ),
        (
            (0, "wearing", 3),
            (0, "has", 2),
            (5, "behind", 0),
            (4, "next to", 0),
            (6, "on", 3),
            (0, "has", 1),
            (7, "behind", 0),
        ),
        (
            ("smiling woman in an orange suit", (20, 15, 345, 497)),
            ("white helmet next to the woman", (275, 345, 230, 167)),
            ("american flag hanging behind the woman", (0, 0, 100, 420)),
            ("woman with short blonde hair", (150, 15, 152, 150)),
            ("round patch sewn on the suit", (133, 348, 78, 76)),
            ("model of a space shuttle standing on a shelf", (352, 0, 120, 285)),
        ),
        (
            "A smiling woman in an orange space suit poses in front of an American flag.",
            "An astronaut in an orange suit sits next to a white helmet.",
            "A woman with short blonde hair wearing an orange flight suit.",
            "Portrait of a smiling astronaut with a flag and a model space shuttle behind her.",
            "A woman in an orange suit smiles beside a large white helmet.",
        ),
        "A smiling astronaut in an orange flight suit sits beside a white helmet in front of an "
        "American flag and a model of the space shuttle.",
    ),
    Photo(
        "chelsea",
        "scikit-image skimage.data.chelsea (Stefan van der Walt, CC0)",
        _skimage("chelsea.png"),
        (
            ("cat", (0, 0, 451, 300), ("striped", "brown")),
            ("eye", (135, 85, 70, 62), ("green",)),
            ("eye", (293, 105, 52, 60), ("green",)),
            ("nose", (235, 222, 60, 45), ("pink",)),
            ("ear", (330, 0, 75, 75), ("brown",)),
            ("whiskers", (0, 195, 165, 105), ("white",)),
        ),
        (
            (0, "has", 1),
            (0, "has", 2),
            (0, "has", 3),
            (0, "has", 4),
            (0, "has", 5),
            (1, "left of", 2),
        ),
        (
            ("cat with green eyes", (135, 85, 210, 80)),
            ("pink nose of a cat", (235, 222, 60, 45)),
            ("long white whiskers", (0, 195, 165, 105)),
            ("striped brown fur", (0, 0, 451, 300)),
            ("cat looking at the camera", (0, 0, 451, 300)),
        ),
        (
            "A close up of a striped tabby cat with green eyes.",
            "A brown tabby cat looking straight at the camera.",
            "The face of a cat with long white whiskers and a pink nose.",
            "A striped cat staring at the viewer with big green eyes.",
            "Close view of a tabby cat's face and whiskers.",
        ),
        "A close up of a striped tabby cat with green eyes and long white whiskers.",
    ),
    Photo(
        "coffee",
        "scikit-image skimage.data.coffee (Rachel Michetti, CC0)",
        _skimage("coffee.png"),
        (
            ("cup", (172, 17, 240, 288), ("red", "white")),
            ("saucer", (75, 85, 405, 305), ("red", "round")),
            ("spoon", (320, 65, 105, 265), ("silver", "metal", "shiny")),
            ("coffee", (205, 95, 170, 100), ("brown",)),
            ("table", (0, 0, 600, 400), ("wooden", "brown")),
            ("handle", (195, 222, 60, 85), ("red",)),
        ),
        ((0, "on", 1), (2, "on", 1), (1, "on", 4), (0, "has", 5), (3, "in", 0), (2, "next to", 0)),
        (
            ("cup of coffee on a red saucer", (75, 17, 405, 373)),
            ("silver spoon lying on the saucer", (320, 65, 105, 265)),
            ("coffee with light brown foam", (205, 95, 170, 100)),
            ("wooden table under the saucer", (0, 0, 600, 400)),
            ("handle of the red cup", (195, 222, 60, 85)),
        ),
        (
            "A cup of coffee on a red saucer with a silver spoon.",
            "An espresso in a red and white cup on a wooden table.",
            "A coffee cup sitting on a saucer next to a metal spoon.",
            "A small cup of coffee with foam served on a red plate.",
            "A red espresso cup and a spoon on a wooden table.",
        ),
        "A café crème in a red cup on its saucer, with a silver spoon \u2014 served on a wooden "
        "table at our favourite café.",
    ),
    Photo(
        "rocket",
        "scikit-image skimage.data.rocket (SpaceX, public domain)",
        _skimage("rocket.jpg"),
        (
            ("tower", (0, 0, 90, 427), ("tall", "metal")),
            ("tower", (555, 0, 85, 427), ("tall", "metal")),
            ("tower", (165, 120, 45, 307), ("tall",)),
            ("tower", (435, 120, 45, 307), ("tall",)),
            ("sky", (0, 0, 640, 360), ("dark blue",)),
            ("light", (340, 370, 45, 45), ("bright", "yellow")),
            ("light", (95, 395, 35, 32), ("bright",)),
        ),
        ((2, "left of", 3), (0, "left of", 2), (3, "left of", 1), (5, "below", 4)),
        (
            ("tall metal tower on the left", (0, 0, 90, 427)),
            ("bright lights at the launch pad", (95, 370, 290, 57)),
            ("dark blue evening sky", (0, 0, 640, 360)),
            ("rocket standing between two towers", (300, 125, 70, 300)),
            ("launch tower made of steel", (555, 0, 85, 427)),
        ),
        (
            "A white rocket standing on a launch pad at dusk.",
            "A rocket between tall metal towers under a dark blue sky.",
            "Bright lights shine at the base of a rocket on the launch pad.",
            "A space rocket waiting for launch in the evening.",
            "Launch towers and a tall rocket against a blue evening sky.",
        ),
        "A white rocket standing on the launch pad between tall metal towers at dusk.",
    ),
    Photo(
        "motorcycle",
        "scikit-image skimage.data.stereo_motorcycle (Middlebury 2014 stereo benchmark)",
        _skimage("motorcycle_left.png"),
        (
            ("motorcycle", (90, 90, 595, 360), ("red", "parked", "shiny")),
            ("wheel", (510, 290, 175, 160), ("black",)),
            ("wheel", (120, 250, 160, 150), ("black",)),
            ("seat", (145, 160, 210, 65), ("black",)),
            ("headlight", (505, 120, 55, 70), ("round",)),
            ("shelf", (340, 0, 375, 300), ("metal", "gray")),
            ("box", (525, 30, 75, 70), ("brown",)),
            ("engine", (330, 240, 150, 130), ("silver", "metal")),
            ("floor", (0, 330, 741, 170), ("gray",)),
        ),
        (
            (0, "on", 8),
            (0, "has", 1),
            (0, "has", 2),
            (0, "has", 3),
            (0, "has", 4),
            (6, "on", 5),
            (0, "in front of", 5),
            (0, "has", 7),
        ),
        (
            ("red motorcycle parked in a garage", (90, 90, 595, 360)),
            ("black leather seat", (145, 160, 210, 65)),
            ("front wheel of the motorcycle", (510, 290, 175, 160)),
            ("metal shelf with boxes", (340, 0, 375, 300)),
            ("cardboard box on the shelf", (525, 30, 75, 70)),
            ("chrome engine", (330, 240, 150, 130)),
        ),
        (
            "A red motorcycle parked in a garage.",
            "A shiny red motorbike in front of metal shelves full of boxes.",
            "A red and black motorcycle standing on a concrete floor.",
            "A parked motorcycle with a black seat inside a workshop.",
            "An old red motorcycle on its kickstand in a garage.",
        ),
        "A red motorcycle with a black seat parked in front of metal shelves in a garage.",
    ),
    Photo(
        "china",
        "scikit-learn sample image china.jpg (danielbuechele on Flickr, CC BY 2.0)",
        _sklearn("china.jpg"),
        (
            ("building", (60, 28, 310, 362), ("red", "tall", "old")),
            ("roof", (95, 65, 225, 75), ("orange",)),
            ("trees", (340, 135, 300, 292), ("green",)),
            ("trees", (0, 150, 80, 277), ("green",)),
            ("water", (330, 215, 225, 115), ("blue", "calm")),
            ("sky", (0, 0, 640, 215), ("blue", "clear")),
        ),
        ((0, "has", 1), (2, "right of", 0), (0, "near", 4), (5, "above", 0), (3, "left of", 0)),
        (
            ("tall red temple with a colorful roof", (60, 28, 310, 362)),
            ("green trees growing on the hill", (340, 135, 300, 292)),
            ("lake in the distance", (330, 215, 225, 115)),
            ("clear blue sky", (0, 0, 640, 215)),
            ("orange tiles on the roof", (95, 65, 225, 75)),
        ),
        (
            "A tall Chinese temple with colorful roofs next to green trees.",
            "A red pagoda on a hill above a lake.",
            "An old temple building surrounded by trees under a clear sky.",
            "A traditional tower with orange and green roofs overlooking the water.",
            "A red and orange temple with a lake and trees in the background.",
        ),
        "A tall red temple with colorful orange roofs on a hill above a lake, surrounded by green trees.",
    ),
    Photo(
        "flower",
        "scikit-learn sample image flower.jpg (vultilion on Flickr, CC BY 2.0)",
        _sklearn("flower.jpg"),
        (
            ("flower", (168, 85, 280, 275), ("orange", "round")),
            ("flower", (288, 375, 180, 52), ("orange",)),
            ("leaves", (0, 0, 640, 427), ("green", "dark")),
        ),
        ((0, "above", 1), (0, "in front of", 2)),
        (
            ("orange dahlia in bloom", (168, 85, 280, 275)),
            ("round flower with many petals", (168, 85, 280, 275)),
            ("dark green leaves in the background", (0, 0, 640, 427)),
            ("second flower at the bottom", (288, 375, 180, 52)),
        ),
        (
            "An orange dahlia flower in full bloom.",
            "A round orange flower with many curled petals.",
            "Close up of a peach colored flower against dark green leaves.",
            "A large orange blossom with another flower below it.",
            "A dahlia with layered petals in front of a blurred green background.",
        ),
        "A round orange dahlia flower in full bloom in front of dark green leaves.",
    ),
    Photo(
        "grace_hopper",
        "matplotlib sample data grace_hopper.jpg (US Navy, public domain)",
        _matplotlib("grace_hopper.jpg"),
        (
            ("woman", (20, 20, 492, 580), ("old", "smiling")),
            ("hat", (150, 22, 222, 138), ("black",)),
            ("glasses", (175, 170, 180, 55), ("brown",)),
            ("face", (165, 130, 200, 205), ()),
            ("tie", (215, 405, 85, 115), ("black",)),
            ("flag", (0, 0, 175, 560), ("striped", "blue")),
            ("uniform", (10, 300, 502, 300), ("black",)),
            ("shirt", (195, 320, 140, 160), ("white",)),
            ("ribbon", (322, 485, 135, 45), ("colorful",)),
            ("emblem", (225, 30, 80, 70), ("white",)),
        ),
        (
            (0, "wearing", 1),
            (0, "wearing", 2),
            (0, "wearing", 6),
            (0, "wearing", 4),
            (5, "behind", 0),
            (8, "on", 6),
            (9, "on", 1),
        ),
        (
            ("old woman wearing a navy hat", (20, 20, 492, 580)),
            ("glasses on her face", (175, 170, 180, 55)),
            ("black tie and white shirt", (195, 320, 140, 200)),
            ("american flag behind the woman", (0, 0, 175, 560)),
            ("ribbons on the uniform", (322, 485, 135, 45)),
            ("woman in a dark uniform", (10, 300, 502, 300)),
        ),
        (
            "An elderly woman in a navy uniform and hat poses in front of a flag.",
            "A portrait of an old woman wearing glasses and a black cap.",
            "A woman in a dark military uniform with ribbons on her chest.",
            "An older lady with glasses in front of an American flag.",
            "A smiling woman in uniform wearing a hat with a gold emblem.",
        ),
        "An elderly woman in a navy uniform, glasses and a black hat in front of an American flag.",
    ),
)


def load_photos() -> list[tuple[Photo, ImageRecord]]:
    """Every packaged photo that loads, as (spec, record) with ids from :data:`PHOTO_ID_BASE`.

    Ids are fixed per photo (by position in :data:`PHOTOS`), so a missing package leaves a gap
    rather than renumbering the others.
    """
    out = []
    for n, photo in enumerate(PHOTOS):
        try:
            image = photo.load()
        except OSError as exc:  # a package, or the file inside it, is missing
            logger.warning("photo %s unavailable (%s); skipped", photo.name, exc)
            continue
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=JPEG_QUALITY)
        w, h = image.size
        rec = ImageRecord(
            image_id=PHOTO_ID_BASE + n,
            source="photo",
            kind=photo.name,
            width=w,
            height=h,
            jpeg=buf.getvalue(),
            credit=photo.credit,
            objects=[AnnObject(name, box, list(attrs)) for name, box, attrs in photo.objects],
            relations=[Relation(s, p, o) for s, p, o in photo.relations],
            regions=list(photo.regions),
            captions=list(photo.captions),
        )
        for o in rec.objects:
            x, y, bw, bh = o.box
            if x < 0 or y < 0 or x + bw > w or y + bh > h:
                raise ValueError(f"photo {photo.name}: box {o.box} of {o.name} outside {w}x{h}")
        out.append((photo, rec))
    return out
