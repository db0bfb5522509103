"""The loopwise server demo: ``python -m loopwise.demo`` (or ``loopwise demo serve``)."""
