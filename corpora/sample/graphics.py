"""Rendered non-natural images: pages of text, a web-site screenshot and a quote card.

The sample web shows them as the dominant image of otherwise good pages, so LAIT's non-natural
filter has text images to find (its text-area cue), and the filter tests use the same renders
beside real photos. Drawn with Pillow's built-in scalable font (``ImageFont.load_default``),
so every render is the same on every machine.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "our",
         "team", "reviews", "the", "quarterly", "report", "and", "plans", "the", "next",
         "release", "of", "the", "web", "site")  # fmt: skip


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_page(w: int = 640, h: int = 480, dark: bool = False, shift: int = 0) -> Image.Image:
    """A page of running text, dark on white (or light on navy); ``shift`` varies the words."""
    img = Image.new("RGB", (w, h), (20, 30, 60) if dark else (255, 255, 255))
    d = ImageDraw.Draw(img)
    for k, y in enumerate(range(16, h - 24, 26)):
        line = " ".join(WORDS[(k * 3 + i + shift) % len(WORDS)] for i in range(9))
        colour = (235, 235, 235) if dark else (20, 20, 20)
        d.text((16, y), line.capitalize(), fill=colour, font=font(18))
    return img


def screenshot(w: int = 800, h: int = 600) -> Image.Image:
    """A web page as captured from a screen: navigation bar, side menu, text and a button."""
    img = Image.new("RGB", (w, h), (246, 246, 246))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, 56], fill=(40, 60, 120))
    d.text((16, 16), "Home   Products   Blog   About us   Contact", fill="white", font=font(20))
    d.rectangle([0, 56, 190, h], fill=(225, 225, 232))
    for i in range(12):
        d.text((14, 76 + i * 36), f"Menu item {i + 1}", fill=(30, 30, 30), font=font(16))
    for k, y in enumerate(range(80, h - 80, 28)):
        line = " ".join(WORDS[(k * 5 + i) % len(WORDS)] for i in range(8))
        d.text((210, y), line, fill=(15, 15, 15), font=font(16))
    d.rectangle([210, h - 64, 400, h - 24], fill=(0, 120, 215))
    d.text((226, h - 56), "Sign up now", fill="white", font=font(18))
    return img


def quote_card() -> Image.Image:
    """Three lines of large text on a flat background (a motivational quote)."""
    img = Image.new("RGB", (600, 400), (250, 220, 90))
    d = ImageDraw.Draw(img)
    for i, line in enumerate(("Believe in", "yourself and", "never give up!")):
        d.text((60, 80 + i * 70), line, fill=(40, 40, 40), font=font(40))
    return img
