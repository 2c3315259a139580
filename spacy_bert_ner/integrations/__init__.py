"""Adapters for the programs people already run around a NER model: Microsoft Presidio
(`presidio`). The service's protocols (Hugging Face's token classification, Label Studio's ML
backend) are routes of `serve`."""
