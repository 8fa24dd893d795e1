"""Texts of the sample web pages: English filler, foreign-language pages, spam, adult and
gibberish alt texts, the description shared by many images and an over-long alt text.

The foreign paragraphs are long enough (50+ words) for a language identifier to be sure.
"""

from __future__ import annotations

FILLER = (
    "We took this picture on a quiet afternoon last spring.",
    "The light was soft and the colours looked even brighter in person.",
    "Several readers asked us where it was taken, so here is the story behind it.",
    "It is one of our favourite photos from this year.",
    "Let us know in the comments what you think of it.",
    "We will post more pictures from the same trip next week.",
    "The weather was warm and there was hardly anyone around.",
    "Our neighbours often stop by to look at the view.",
    "This little corner of the town has become a popular spot for families.",
    "Thanks to everyone who sent us their own pictures of the place.",
    "The scene changes a lot with the seasons, and we try to capture every one of them.",
    "Below you can see what we found when we arrived.",
    "It only took a few minutes to set up the camera.",
    "Children love playing here when school is over.",
    "Many visitors say it reminds them of the holidays they had as kids.",
    "If you visit, bring a camera and a little patience.",
)
TITLES = ("Photo of the day", "Weekend notes", "From our readers", "Around town", "Picture post")
FOREIGN = {
    "de": (
        "Unser Ausflug am Wochenende",
        "Am Wochenende waren wir mit der ganzen Familie im Park. Das Wetter war wunderbar, die "
        "Sonne schien und die Kinder haben stundenlang mit dem Ball gespielt. Auf dem Foto sieht "
        "man unseren Ausflug. Wir freuen uns schon auf den nächsten Sommer und möchten dann "
        "unbedingt wieder zusammen hinausfahren, wenn es die Zeit erlaubt.",
        "Ein kleiner roter Ball liegt neben einem großen Haus auf der grünen Wiese",
    ),
    "fr": (
        "Une journée à la plage",
        "Ce week-end, nous sommes allés à la plage avec toute la famille. Il faisait très beau "
        "et les enfants ont joué avec leur ballon pendant des heures. Sur cette photo, on voit "
        "notre petite sortie au bord de la mer. Nous avons hâte de revenir l'été prochain pour "
        "profiter encore du soleil et du sable.",
        "Un grand parasol rouge et un petit ballon sur le sable de la plage",
    ),
    "es": (
        "Un domingo en el lago",
        "El domingo pasado fuimos al lago con nuestros amigos. Hacía muy buen tiempo y pasamos "
        "toda la tarde mirando los barcos y los pájaros que volaban sobre el agua. En esta foto "
        "se puede ver el paisaje tranquilo de aquel día. Queremos volver muy pronto porque fue "
        "una experiencia preciosa para todos nosotros.",
        "Un barco blanco navegando en el lago bajo un cielo azul",
    ),
    "it": (
        "Una passeggiata in città",
        "Questa mattina abbiamo fatto una passeggiata per le strade del nostro quartiere. Le case "
        "erano illuminate dal sole e c'erano molte macchine parcheggiate lungo la via. Nella foto "
        "potete vedere la nostra strada preferita. Speriamo di tornare presto a fotografare questi "
        "luoghi così belli e tranquilli con tutta la famiglia.",
        "Una macchina rossa parcheggiata davanti a una casa gialla",
    ),
}
SPAM = (
    (
        "Buy cheap viagra online now, best casino bonus and free spins",
        "Buy now! Cheap viagra and cialis online, no prescription needed. Best online casino bonus, "
        "free spins, win real money fast. Click to claim your prize today, limited offer.",
    ),
    (
        "Cheap replica watches, buy now at the lowest price, casino jackpot and free money",
        "Cheap replica watches and bags. Buy now, cheap price guaranteed, free shipping worldwide. "
        "Play the casino jackpot and get free money with every order.",
    ),
)
ADULT = (
    (
        "Free xxx porn videos and nude sex webcams",
        "Hot xxx porn videos updated daily. Nude webcam sex shows and adult chat, 18+ only.",
    ),
    (
        "Hot naked adult models in nsfw xxx porn pictures",
        "Explicit adult content: naked models, porn galleries and xxx pictures. Adults only.",
    ),
)
# Alt texts in another language on English pages (the text step's English confidence).
FOREIGN_ALT = (
    "Eine alte Katze schläft auf dem warmen Sofa im Wohnzimmer",
    "Una bicicleta azul apoyada contra la pared de la casa",
    "Un petit chien noir dort sous la table de la cuisine",
)
OOV = "Zorblat quixenfrump vlargish snerdo plooberwick tazzlemorf"
SHARED = "A beautiful day out with friends and family."
LONG_TEXT = (
    "This is the picture that I promised to share with everyone after our long trip last year, "
    "and although it is not perfect I still like it very much because it reminds me of the long "
    "afternoons that we spent outside talking about everything and nothing while the light slowly "
    "changed and the children ran around until it was time to go home for dinner again"
)
