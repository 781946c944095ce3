"""The run store, the bottom layer: the record schema (``schema``), names and encoding
(``layout``), byte backends for a local folder or S3 (``backends``), the one tolerant
parser (``parse``), the record reader (``reader``) and the run index (``index``)."""
