"""Language detection with the real py3langid model: ISO 639-1 codes for clear text, "unknown" for the rest."""

from __future__ import annotations

import sys

import pytest

from flightdeck.data import language
from flightdeck.data.language import UNKNOWN_LANGUAGE, detect_language
from flightdeck.errors import MissingDependencyError

pytestmark = pytest.mark.integration

# One sentence per language; langdetect, used before, gave the same code for each ("zh-cn" for Chinese).
CLEAR = {
    "en": "The committee met on Tuesday to discuss the new library opening hours and agreed to extend them.",
    "de": "Der Ausschuss traf sich am Dienstag, um die neuen Öffnungszeiten der Bibliothek zu besprechen.",
    "fr": "Le comité s'est réuni mardi pour discuter des nouveaux horaires de la bibliothèque.",
    "es": "El comité se reunió el martes para discutir el nuevo horario de la biblioteca y acordó ampliarlo.",
    "it": "Il comitato si è riunito martedì per discutere i nuovi orari di apertura della biblioteca.",
    "pt": "O comitê reuniu-se na terça-feira para discutir o novo horário da biblioteca e decidiu prolongá-lo.",
    "nl": "De commissie kwam dinsdag bijeen om de nieuwe openingstijden van de bibliotheek te bespreken.",
    "sv": "Kommittén sammanträdde på tisdagen för att diskutera bibliotekets nya öppettider.",
    "pl": "Komisja zebrała się we wtorek, aby omówić nowe godziny otwarcia biblioteki.",
    "ru": "Комитет собрался во вторник, чтобы обсудить новые часы работы библиотеки.",
    "uk": "Комітет зібрався у вівторок, щоб обговорити новий графік роботи бібліотеки.",
    "el": "Η επιτροπή συνεδρίασε την Τρίτη για να συζητήσει το νέο ωράριο της βιβλιοθήκης.",
    "tr": "Komite salı günü kütüphanenin yeni çalışma saatlerini görüşmek üzere toplandı.",
    "ar": "اجتمعت اللجنة يوم الثلاثاء لمناقشة ساعات العمل الجديدة للمكتبة وقررت تمديدها خلال فترة الامتحانات.",
    "he": "הוועדה התכנסה ביום שלישי כדי לדון בשעות הפתיחה החדשות של הספרייה והחליטה להאריך אותן.",
    "hi": "समिति ने मंगलवार को पुस्तकालय के नए समय पर चर्चा करने के लिए बैठक की और इसे बढ़ाने का निर्णय लिया।",
    "ja": "委員会は火曜日に集まり、図書館の新しい開館時間について話し合い、試験期間中は延長することを決めました。",
    "ko": "위원회는 화요일에 모여 도서관의 새로운 개관 시간을 논의했고 시험 기간 동안 연장하기로 결정했습니다.",
    "zh": "委员会星期二开会讨论图书馆新的开放时间，并决定在考试期间延长开放时间，以便学生有更多的时间学习。",
    "fi": "Valiokunta kokoontui tiistaina keskustelemaan kirjaston uusista aukioloajoista.",
    "cs": "Výbor se v úterý sešel, aby projednal novou otevírací dobu knihovny.",
    "vi": "Ủy ban đã họp vào thứ Ba để thảo luận về giờ mở cửa mới của thư viện và quyết định kéo dài.",
}


@pytest.mark.parametrize("code", sorted(CLEAR))
def test_clear_text_gets_its_iso_639_1_code(code: str) -> None:
    assert detect_language(CLEAR[code]) == code


def test_languages_without_an_iso_639_1_code_get_the_closest_that_has_one() -> None:
    # the model's own answers are "grc" (Ancient Greek) and "yue" (Cantonese): not ISO 639-1
    assert detect_language("Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν, καὶ θεὸς ἦν ὁ λόγος.") == "el"
    assert detect_language("我哋今日去飲茶，你嚟唔嚟呀？佢話佢好攰，唔想出街。") == "zh"


def test_short_or_languageless_text_is_unknown() -> None:
    assert detect_language("") == UNKNOWN_LANGUAGE
    assert detect_language("OK 42 | 17.5 | 2024-01-01") == UNKNOWN_LANGUAGE  # under 20 letters
    assert detect_language("a3f9c2 b7e1d4 9f8e7d 6c5b4a 3f2e1d 0c9b8a 7f6e5d 4c3b2a") == UNKNOWN_LANGUAGE  # hex


def test_only_the_head_of_a_long_text_is_read() -> None:
    text = CLEAR["de"] * 20 + CLEAR["en"] * 200
    assert len(CLEAR["de"] * 20) > language.MAX_CHARS and detect_language(text) == "de"


def test_a_missing_detector_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "_identifier", None)
    monkeypatch.setitem(sys.modules, "py3langid", None)  # what `import` sees when it is not installed
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    with pytest.raises(MissingDependencyError,
                       match=r"needs: pip install 'flightdeck\[cleaning\]' \(missing: py3langid"):
        detect_language(CLEAR["en"])
