SDK_NAME = "jobstream-executor-python"
SDK_VERSION = "0.1.0"
#: The protocol revision this SDK speaks: 1, one message per envelope.
PROTOCOL_VERSION = 1
