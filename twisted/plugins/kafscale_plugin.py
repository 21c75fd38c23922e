from twisted.application.service import ServiceMaker

Kafscale = ServiceMaker(
    "Kafscale",
    "kafscale.tap",
    "A Kafka-compatible broker that keeps records in an object store.",
    "kafscale",
)
