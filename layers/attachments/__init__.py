"""Photos and documents of cases and features: sniffed, stripped of EXIF GPS, device and
owner tags, stored content-addressed under ``CITYHEX_HOME``, and served under the case's
read rules."""
