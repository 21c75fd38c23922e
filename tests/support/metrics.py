"""Reading a broker's admin API in tests: scrape /metrics into samples,
and ask the probes."""

import treq
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """One scrape: every sample by name, with its labels."""

    def __init__(self, text):
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self._samples = [sample for family in self.families.values() for sample in family.samples]

    def total(self, name, **labels):
        """The sum of the samples called ``name`` whose labels include
        ``labels`` (0 when there are none)."""
        return sum(sample.value for sample in self._samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def by(self, name, label, **labels):
        """{value of ``label``: sum of the samples called ``name`` with it}."""
        found = {}
        for sample in self._samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                key = sample.labels[label]
                found[key] = found.get(key, 0) + sample.value
        return found

    def names(self):
        """Every sample name exported (a counter's ``_total``, a histogram's
        ``_bucket``, ``_sum`` and ``_count``, ...)."""
        return {sample.name for sample in self._samples}


async def scrape(base_url):
    response = await treq.get(base_url + "/metrics", persistent=False)
    assert response.code == 200, response.code
    return Samples((await treq.content(response)).decode())


async def probe(base_url, path):
    """(status, body text) of GET ``path``."""
    response = await treq.get(base_url + path, persistent=False)
    return response.code, (await treq.content(response)).decode()
