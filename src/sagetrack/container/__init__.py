"""Container side: runs inside the training job (bootstrap, recorder, Keras adapter, writer).

Imports only the standard library, ``sagetrack.store`` and, lazily, boto3 and Keras.
"""
