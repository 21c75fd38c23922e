# One image for the broker (`twistd --nodaemon --pidfile= kafscale`, what
# the operator's StatefulSets run) and the operator (`kafscale-operator run`).
#   docker build -t kafscale/kafscale:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
# python-snappy builds against libsnappy where no wheel fits
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential libsnappy-dev \
    && rm -rf /var/lib/apt/lists/*
COPY setup.py README.rst LICENSE ./
COPY kafscale ./kafscale
COPY kafscale_admin ./kafscale_admin
COPY kafscale_operator ./kafscale_operator
COPY twisted ./twisted
RUN python -m venv /opt/kafscale && /opt/kafscale/bin/pip install --no-cache-dir '.[operator]'

FROM python:3.11-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libsnappy1v5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 kafscale && useradd --uid 10001 --gid 10001 --no-create-home kafscale
COPY --from=build /opt/kafscale /opt/kafscale
ENV PATH=/opt/kafscale/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
EXPOSE 9092 9644
CMD ["twistd", "--nodaemon", "--pidfile=", "kafscale"]
