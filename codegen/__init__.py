"""The generator: reads protos/ and writes centrifugo_types/_generated/ (``python -m codegen``)."""
