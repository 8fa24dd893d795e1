"""The sample crawl's pages: mostly good English pages, plus one or more cases per LAIT filter.

Kept pairs show training-split scenes (each at most once) and packaged photos, with a caption
of that image as text, so LAIT's output can feed the feature extractor and pre-training. Every
other case says which reason it was written to get; :func:`corpora.sample.web_pages.judge`
checks that the documented rules give exactly that reason.
"""

from __future__ import annotations

import html
import random

from corpora.sample.graphics import screenshot, text_page
from corpora.sample.photos import PHOTOS
from corpora.sample.records import ImageRecord
from corpora.sample.web_assets import AssetFactory
from corpora.sample.web_pages import Page
from corpora.sample.web_text import (
    ADULT,
    FILLER,
    FOREIGN,
    FOREIGN_ALT,
    LONG_TEXT,
    OOV,
    SHARED,
    SPAM,
    TITLES,
)

NEWS_PAGES, BLOG_PAGES, GALLERY_PAGES = 6, 24, 2
# Scenes shown by kept pairs (each once): news, blog, two per gallery page, one re-posted image.
KEPT_SCENES = NEWS_PAGES + BLOG_PAGES + 2 * GALLERY_PAGES + 1


class _Web:
    def __init__(self, factory: AssetFactory, photos: dict[str, ImageRecord], rng: random.Random):
        self.f, self.photos, self.rng = factory, photos, rng
        self.pages: list[Page] = []
        self.used: set[str] = set()  # texts of kept pairs: each once, so none is "shared"

    def page(self, slug: str, **kw) -> Page:
        title = kw.pop("title", None) or f"{self.rng.choice(TITLES)} #{len(self.pages) + 1}"
        kw.setdefault("kind", slug.rsplit("-", 1)[0] if slug[-1].isdigit() else slug)
        page = Page(slug, title, **kw)
        page.h1(title)
        self.pages.append(page)
        return page

    def filler(self, n: int) -> str:
        return " ".join(self.rng.sample(FILLER, n))

    def caption(self, rec: ImageRecord, prefer: int = 0) -> str:
        """A caption of ``rec`` no kept pair uses yet."""
        order = [prefer] + [i for i in range(len(rec.captions)) if i != prefer]
        for i in order:
            if rec.captions[i].lower() not in self.used:
                self.used.add(rec.captions[i].lower())
                return rec.captions[i]
        raise ValueError(f"no unused caption left for image {rec.key}")

    def chrome(self, page: Page) -> None:
        """The news site's header (logo, icons) and footer (tracking pixel)."""
        logo = page.furniture(self.f.chrome("logo"), "The Daily Sample", "site-logo", (120, 40),
                              "site logo in the header")  # fmt: skip
        home, search = (
            page.furniture(
                self.f.chrome(f"icon-{n}"), n.title(), "icon", (24, 24), "navigation icon"
            )
            for n in ("home", "search")
        )
        pixel = page.furniture(
            self.f.pixel(page.slug), "", "tracking-pixel", (1, 1), "tracking pixel"
        )
        page.header = (
            f'<header><a href="/">{logo}</a>\n<nav><a href="/">{home}</a> '
            f'<a href="/search">{search}</a></nav></header>\n'
        )
        page.footer = (
            f"<footer><p>&copy; The Daily Sample. All rights reserved.</p>{pixel}</footer>\n"
        )

    def news(self) -> None:
        for n in range(NEWS_PAGES):
            rec = self.f.take_scene(kept=True)
            page = self.page(f"news-{n + 1:02d}", src_style=("absolute", "root", "relative")[n % 3])
            self.chrome(page)
            page.p(self.filler(3))
            asset = self.f.image(rec, "file" if n % 3 == 2 else "warc")
            cap = self.caption(rec, 2) if n % 2 else None
            page.figure(
                asset, alt=self.caption(rec, 0), caption=cap, note="news photo with alt text"
            )
            if n == 1:
                page.divider(self.f.chrome("divider"))
            page.p(rec.captions[3] + " " + self.filler(2))
            if n == 2:
                page.aside(
                    self.f.chrome("ad"), "ad", "Advertisement", "advertising banner in an aside"
                )
            if n == 3:
                other = self.f.take_scene(kept=False)
                thumb = self.f.image(other, "warc", resize=(120, 90), sub="thumbs/")
                page.aside(
                    thumb, "related", "Related: " + other.captions[0], "related-post thumbnail"
                )

    def blog(self) -> None:
        for m in range(BLOG_PAGES):
            n = m % 12  # twelve ways of giving an image its text, each used twice
            rec = self.f.take_scene(kept=True)
            store = "html" if n == 8 else "warc"
            page = self.page(
                f"blog-{m + 1:02d}",
                store=store,
                src_style=("root", "absolute")[m % 2],
                meta_charset=m % 4 != 1,
                header_charset=m % 4 != 3,
            )
            page.p(self.filler(3))
            asset = self.f.image(rec, "file" if n in (2, 5, 8, 11) else "warc")
            if n < 3:
                page.figure(asset, alt=self.caption(rec, n), note="alt text only")
            elif n < 5:
                page.figure(
                    asset,
                    alt=self.caption(rec, 0),
                    caption=self.caption(rec, 1),
                    note="alt text and figcaption: alt wins",
                )
            elif n < 7:
                page.figure(asset, caption=self.caption(rec, n - 4), note="figcaption only")
            elif n == 7:
                page.figure(asset, title=self.caption(rec, 3), note="title attribute only")
            elif n < 10:
                page.inline(
                    asset, self.caption(rec, 1), note="text around the image in its paragraph"
                )
            elif n == 10:
                page.figure(
                    asset,
                    alt="photo",
                    caption=self.caption(rec, 2),
                    note="boilerplate alt, good figcaption: the figcaption is used",
                )
            else:
                text = self.caption(rec, 0).replace(" and ", " & ")  # the listing has an "and"
                raw = html.escape(text).replace(" ", "\n      ", 2)
                page.figure(
                    asset,
                    caption=text,
                    caption_html=raw,
                    note="figcaption with an HTML entity and line breaks",
                )
            page.p(self.filler(2))

    def gallery(self) -> None:
        for n in range(GALLERY_PAGES):
            page = self.page(
                f"gallery-{n + 1:02d}", title=f"Gallery: summer pictures, part {n + 1}"
            )
            page.p(self.filler(2))
            for k in range(2):
                rec = self.f.take_scene(kept=True)
                page.figure(
                    self.f.image(rec),
                    alt=self.caption(rec, k),
                    caption=self.caption(rec, k + 2),
                    note="one of two dominant images on a gallery page",
                )
            page.p(self.filler(2))

    def photo_pages(self) -> None:
        ph = self.photos
        specs = (
            ("motorcycle", "warc", {}),
            ("china", "warc", {}),
            ("flower", "html", {}),
            ("grace_hopper", "html", {}),
            ("coffee", "warc", {"charset": "windows-1252", "meta_charset": False}),
            ("rocket", "warc", {"gzip": True}),
        )
        for name, store, kw in specs:
            if name not in ph:
                continue
            rec = ph[name]
            slug = (
                "cafe" if name == "coffee" else ("launch" if name == "rocket" else f"photo-{name}")
            )
            page = self.page(slug, store=store, **kw)
            if name == "coffee":
                page.p(
                    "Our café\u2019s crème brûlée and espresso are the best in town \u2014 come and "
                    "try them. We roast the beans ourselves every morning and serve them with a "
                    "smile, whatever the weather."
                )
            else:
                page.p(self.filler(3))
            asset = self.f.image(rec, "file" if store == "html" else "warc")
            how = {
                "coffee": ", page in windows-1252 declared in the HTTP header only",
                "rocket": ", page body sent with Content-Encoding: gzip",
            }.get(name, "")
            if name == "china":
                page.figure(
                    asset,
                    alt=self.caption(rec, 0),
                    caption=self.caption(rec, 1),
                    note="packaged photo (china)",
                )
            else:
                page.figure(asset, alt=self.alt_of(name), note=f"packaged photo ({name}){how}")
            page.p(rec.captions[2] + " " + self.filler(2))

    def alt_of(self, name: str) -> str:
        """The alt text written for packaged photo ``name`` (see :data:`PHOTOS`)."""
        alt = next(p.alt for p in PHOTOS if p.name == name)
        self.used.add(alt.lower())
        return alt

    def duplicates(self) -> None:
        rec = self.f.take_scene(kept=True)
        first = self.f.image(rec)
        copies = [first, self.f.copy(first, "file"), self.f.copy(first, "warc")]
        ranked = sorted(rec.captions, key=lambda c: len(c.split()))
        things = [o for o in rec.objects if o.role == "thing"][:2]
        short = f"{things[0].colour} {things[0].name} and {things[1].colour} {things[1].name}".capitalize()
        texts = [ranked[-1], short, ranked[0]]
        if len(ranked[-1].split()) == len(ranked[0].split()):  # all captions equally long
            texts[2] = short.replace(" and ", " next to ")
        for n, (asset, text) in enumerate(zip(copies, texts, strict=True)):
            page = self.page(f"repost-{n + 1:02d}")
            page.p(self.filler(3))
            kw = {"alt": text} if n < 2 else {"caption": text}
            page.figure(
                asset,
                expect=None if n == 0 else "duplicate_image",
                note="the same image bytes re-posted under another URL",
                **kw,
            )
            self.used.add(text.lower())
        if "astronaut" in self.photos:
            astro = self.f.image(self.photos["astronaut"])
            for n, text in enumerate(
                (self.alt_of("astronaut"), "Astronaut portrait with a white helmet")
            ):
                page = self.page(f"space-{n + 1:02d}")
                page.p(self.filler(3))
                page.figure(
                    astro,
                    alt=text,
                    expect=None if n == 0 else "duplicate_image",
                    note="one image URL on two pages",
                )

    def languages(self) -> None:
        for lang, (title, body, alt) in FOREIGN.items():
            page = self.page(f"{lang}-01", lang=lang, title=title)
            page.p(body)
            page.figure(
                self.f.image(self.f.take_scene(kept=False)),
                alt=alt,
                expect="non_english",
                note=f"page in {lang}",
            )

    def foreign_text(self) -> None:
        """English pages whose image's only text is in another language."""
        for n, alt in enumerate(FOREIGN_ALT):
            page = self.page(f"foreign-alt-{n + 1:02d}")
            page.p(self.filler(3))
            page.figure(
                self.f.image(self.f.take_scene(kept=False)),
                alt=alt,
                flag="non_english_text",
                expect="non_english_text",
                note="English page, alt text in another language",
            )
            page.p(self.filler(2))

    def text_images(self) -> None:
        """Good English pages whose dominant image is mostly text (LAIT's non-natural filter)."""
        renders = (
            ("text-page", text_page(shift=1), "The full text of the club newsletter for this month"),
            ("text-page-dark", text_page(dark=True, shift=2),
             "Our quarterly report printed as a single page of text"),
            ("screenshot", screenshot(), "Screenshot of the order page of our new web shop"),
        )  # fmt: skip
        for n, (name, image, alt) in enumerate(renders):
            page = self.page(f"textimage-{n + 1:02d}")
            page.p(self.filler(3))
            page.figure(
                self.f.render(name, image),
                alt=alt,
                flag="non_natural",
                expect="non_natural",
                note=f"a rendered {name.replace('-', ' ')}",
            )
            page.p(self.filler(2))

    def tiny(self) -> None:
        for n, (store, resize, crop) in enumerate(
            (
                ("warc", (240, 180), None),
                ("warc", None, (0, 80, 480, 280)),
                ("html", (280, 210), None),
            )
        ):
            page = self.page(f"tiny-{n + 1:02d}", store=store)
            page.p(self.filler(3))
            rec = self.f.take_scene(kept=False)
            asset = self.f.image(
                rec, "file" if store == "html" else "warc", resize=resize, crop=crop, sub="thumbs/"
            )
            page.figure(
                asset, alt=rec.captions[0], expect="tiny_image", note=f"small image {asset.size}"
            )

    def text_cases(self) -> None:
        cases = [
            (f"spam-{k + 1:02d}", alt, body, "spam_text") for k, (alt, body) in enumerate(SPAM)
        ]
        cases += [
            (f"adult-{k + 1:02d}", alt, body, "adult_text") for k, (alt, body) in enumerate(ADULT)
        ]
        for slug, alt, body, reason in cases:
            page = self.page(slug)
            page.p(body)
            page.figure(
                self.f.image(self.f.take_scene(kept=False)),
                alt=alt,
                flag=reason,
                expect=reason,
                note=reason.replace("_", " "),
            )
            page.p(self.filler(2))
        for slug, kw, reason, note in (
            (
                "boiler-01",
                {"alt": "click here"},
                "boilerplate_text",
                "a linked image whose alt is 'click here'",
            ),
            ("boiler-02", {"alt": "image"}, "boilerplate_text", "alt text 'image'"),
            (
                "boiler-03",
                {"alt": "IMG_0042.JPG", "title": "photo"},
                "boilerplate_text",
                "file name as alt",
            ),
            ("oov-01", {"alt": OOV, "flag": "oov_text"}, "oov_text", "made-up words"),
            ("short-01", {"alt": "Sunset"}, "text_length", "one-word alt text"),
            ("long-01", {"alt": LONG_TEXT}, "text_length", "alt text of more than 50 words"),
        ):
            page = self.page(slug)
            page.p(self.filler(3))
            asset = self.f.image(self.f.take_scene(kept=False))
            if slug == "boiler-01":
                page.linked(asset, expect=reason, note=note, **kw)
            else:
                page.figure(asset, expect=reason, note=note, **kw)
            page.p(self.filler(2))

    def shared(self) -> None:
        for n, count in enumerate((2, 2, 2, 1)):
            page = self.page(f"shop-{n + 1:02d}", title="Summer collection")
            page.p(self.filler(2))
            for _ in range(count):
                page.figure(
                    self.f.image(self.f.take_scene(kept=False)),
                    alt=SHARED,
                    expect="shared_description",
                    note="one description on seven images",
                )

    def broken(self) -> None:
        for slug, store, kinds in (
            ("broken-01", "warc", ("empty", "truncated")),
            ("broken-02", "warc", ("not_image", "http_404")),
            ("broken-03", "html", ("missing", "truncated")),
        ):
            page = self.page(slug, store=store)
            page.p(self.filler(3))
            for how in kinds:
                rec = self.f.take_scene(kept=False)
                asset = self.f.broken(rec, how, "file" if store == "html" else "warc")
                page.figure(
                    asset,
                    alt=rec.captions[0],
                    size=(480, 360),
                    expect="broken_image",
                    note=asset.note,
                )

    def no_text(self) -> None:
        for slug, store in (("plain-01", "warc"), ("plain-02", "html")):
            page = self.page(slug, store=store)
            page.p(self.filler(3))
            rec = self.f.take_scene(kept=False)
            page.bare(
                self.f.image(rec, "file" if store == "html" else "warc"),
                expect="no_text",
                note="an image with no alt, title, caption or text in its element",
            )
            page.p(self.filler(3))

    def no_images(self) -> None:
        for slug, title in (("essay-01", "Why we love taking pictures"), ("contact", "Contact us")):
            page = self.page(slug, title=title, kind="no_images")
            page.p(self.filler(4))
            page.p(self.filler(3))


def build_pages(factory: AssetFactory, photos: dict[str, ImageRecord], seed: int) -> list[Page]:
    """Every page of the sample web, in a shuffled (seeded) crawl order."""
    web = _Web(factory, photos, random.Random(f"msp-sample:{seed}:web"))
    for step in (
        web.news,
        web.blog,
        web.gallery,
        web.photo_pages,
        web.duplicates,
        web.languages,
        web.foreign_text,
        web.tiny,
        web.text_cases,
        web.text_images,
        web.shared,
        web.broken,
        web.no_text,
        web.no_images,
    ):
        step()
    order = list(web.pages)
    random.Random(f"msp-sample:{seed}:crawl-order").shuffle(order)
    return order
