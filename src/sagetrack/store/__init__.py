"""The run store: byte backends (local folder, S3), the record layout, and the reader."""
