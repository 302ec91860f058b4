"""Speech input: Vosk adapter (one shared model, a recognizer per call, a grammar per menu), endpointing.
Imports nothing else of ivr except ivr.config (for the Settings type). Guide: docs/speech.md."""

from ivr.speech.grammar import grammar_json, grammar_phrases, normalise
from ivr.speech.model import UNK, SpeechUnavailable, has_word, load_model, model_dir
from ivr.speech.recognizer import CallRecognizer, SpeechConfig, SpeechResult, confidence_of

__all__ = [
    "UNK",
    "CallRecognizer",
    "SpeechConfig",
    "SpeechResult",
    "SpeechUnavailable",
    "confidence_of",
    "grammar_json",
    "grammar_phrases",
    "has_word",
    "load_model",
    "model_dir",
    "normalise",
]
