"""Object stores: one contract for both backends, then what is S3's alone.

The S3 tests run against a real moto server; the few behaviours moto cannot
be made to show (SlowDown, a 200 that carries an error, a server that never
answers) are played by a scripted HTTP server in the test process.
"""

import os
import time
import urllib.request

from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from kafscale.storage.interfaces import (
    IObjectStore,
    IObjectStoreRequests,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
)
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.s3 import (
    MiB,
    AccessDenied,
    NoSuchBucket,
    S3Error,
    S3ObjectStore,
    raise_tcp_read_size,
)
from tests.support.s3_server import S3Server, s3_server, s3_store, unique_bucket

ODD_KEY = "dir/with space/plus+sign~tilde%percent/ünïcode=&?.kfs"


class ObjectStoreContract:
    """What every IObjectStore does; subclasses provide ``make_store()``."""

    async def setUp(self):
        self.store = await self.make_store()

    def test_provides_the_interface(self):
        self.assertTrue(verifyObject(IObjectStore, self.store))

    async def test_put_then_get(self):
        await self.store.put("t/0/a.kfs", b"hello")
        self.assertEqual(await self.store.get("t/0/a.kfs"), b"hello")
        await self.store.put("t/0/b.kfs", bytearray(b"from a bytearray"))
        await self.store.put("t/0/c.kfs", memoryview(b"xxfrom a viewxx")[2:-2])
        self.assertEqual(await self.store.get("t/0/b.kfs"), b"from a bytearray")
        self.assertEqual(await self.store.get("t/0/c.kfs"), b"from a view")

    async def test_put_replaces(self):
        await self.store.put("k", b"first version")
        await self.store.put("k", b"second")
        self.assertEqual(await self.store.get("k"), b"second")
        self.assertEqual(await self.store.head("k"), 6)

    async def test_empty_object(self):
        await self.store.put("empty", b"")
        self.assertEqual(await self.store.get("empty"), b"")
        self.assertEqual(await self.store.head("empty"), 0)

    async def test_binary_content_survives(self):
        data = bytes(range(256)) * 1000 + os.urandom(1000)
        await self.store.put("binary", data)
        self.assertEqual(await self.store.get("binary"), data)

    async def test_missing_object(self):
        for operation in (self.store.get, self.store.head):
            with self.assertRaises(ObjectNotFound) as caught:
                await operation("no/such/key")
            self.assertEqual(caught.exception.key, "no/such/key")
        with self.assertRaises(ObjectNotFound):
            await self.store.get("no/such/key", 1, 5)

    async def test_ranged_get(self):
        await self.store.put("r", b"0123456789")
        self.assertEqual(await self.store.get("r", 2, 5), b"234")
        self.assertEqual(await self.store.get("r", 7), b"789")
        self.assertEqual(await self.store.get("r", end=3), b"012")
        self.assertEqual(await self.store.get("r", 0, 1), b"0")
        self.assertEqual(await self.store.get("r", 8, 100), b"89")
        self.assertEqual(await self.store.get("r", 10), b"")
        self.assertEqual(await self.store.get("r", 50, 60), b"")

    async def test_bad_ranges(self):
        await self.store.put("r", b"0123456789")
        for start, end in ((5, 5), (6, 2), (-1, 3), (None, 0)):
            with self.assertRaises(ValueError, msg=f"[{start}, {end})"):
                await self.store.get("r", start, end)

    async def test_list_is_sorted_with_sizes_by_string_prefix(self):
        for key, size in (
            ("topic/1/b", 2),
            ("topic/0/a", 1),
            ("topic/10/c", 3),
            ("topical/0/d", 4),
            ("other/0/e", 5),
        ):
            await self.store.put(key, b"x" * size)
        self.assertEqual(
            sizes(await self.store.list("topic/")), [("topic/0/a", 1), ("topic/1/b", 2), ("topic/10/c", 3)],
        )
        self.assertEqual(
            [info.key for info in await self.store.list("topic")],
            ["topic/0/a", "topic/1/b", "topic/10/c", "topical/0/d"],
        )
        self.assertEqual(
            [info.key for info in await self.store.list("topic/1")],
            ["topic/1/b", "topic/10/c"],
        )
        self.assertEqual(len(await self.store.list("")), 5)
        self.assertEqual(await self.store.list("nothing/here/"), [])
        self.assertEqual(
            sizes(await self.store.list("topic/0/a")), [("topic/0/a", 1)])

    async def test_list_says_when_each_object_was_written(self):
        before = int(time.time() * 1000)
        await self.store.put("written/now", b"x")
        [info] = await self.store.list("written/")
        # S3 keeps whole seconds.
        self.assertTrue(before - 1000 <= info.modified_ms <= time.time() * 1000 + 1000, info)

    async def test_delete_is_idempotent(self):
        await self.store.put("d/1", b"1")
        await self.store.put("d/2", b"2")
        await self.store.delete("d/1")
        await self.store.delete("d/1")
        await self.store.delete("never/existed")
        with self.assertRaises(ObjectNotFound):
            await self.store.get("d/1")
        self.assertEqual(
            sizes(await self.store.list("d/")), [("d/2", 1)])

    async def test_keys_with_awkward_characters(self):
        await self.store.put(ODD_KEY, b"odd")
        self.assertEqual(await self.store.get(ODD_KEY), b"odd")
        self.assertEqual(await self.store.get(ODD_KEY, 1), b"dd")
        self.assertEqual(await self.store.head(ODD_KEY), 3)
        self.assertEqual(
            sizes(await self.store.list("dir/")), [(ODD_KEY, 3)])
        await self.store.delete(ODD_KEY)
        self.assertEqual(await self.store.list("dir/"), [])

    async def test_invalid_keys(self):
        for key in ("", "/absolute"):
            with self.assertRaises(ValueError, msg=repr(key)):
                await self.store.put(key, b"x")

    async def test_concurrent_puts(self):
        keys = [f"c/{n:03d}" for n in range(20)]
        results = await DeferredList(
            [self.store.put(key, key.encode()) for key in keys], fireOnOneErrback=True
        )
        self.assertTrue(all(ok for ok, _ in results))
        self.assertEqual([info.key for info in await self.store.list("c/")], keys)
        self.assertEqual(await self.store.get("c/007"), b"c/007")


def sizes(listed):
    """(key, size) of each listed ObjectInfo."""
    return [(info.key, info.size) for info in listed]


class LocalObjectStoreTests(ObjectStoreContract, unittest.TestCase):
    async def make_store(self):
        self.root = self.mktemp()
        return LocalObjectStore(self.root)

    async def test_files_live_under_the_root(self):
        await self.store.put("t/0/segment.kfs", b"data")
        with open(os.path.join(self.root, "t", "0", "segment.kfs"), "rb") as stored:
            self.assertEqual(stored.read(), b"data")
        # The staging area is empty after a put and never listed.
        self.assertEqual(os.listdir(os.path.join(self.root, ".staging")), [])
        self.assertEqual(
            sizes(await self.store.list("")), [("t/0/segment.kfs", 4)])
        self.assertEqual(await self.store.list(".staging/"), [])

    async def test_traversal_and_reserved_keys_are_refused(self):
        for key in ("../escape", "a/../../b", "a//b", ".staging/x", "a/./b"):
            with self.assertRaises(ValueError, msg=key):
                await self.store.put(key, b"x")

    async def test_a_failed_put_leaves_no_trace(self):
        await self.store.put("file", b"x")
        # "file" is a file, so "file/child" cannot be created.
        with self.assertRaises(ObjectStoreError):
            await self.store.put("file/child", b"y")
        self.assertEqual(os.listdir(os.path.join(self.root, ".staging")), [])
        self.assertEqual(
            sizes(await self.store.list("")), [("file", 1)])

    async def test_survives_a_new_store_on_the_same_root(self):
        await self.store.put("kept", b"across restarts")
        self.assertEqual(await LocalObjectStore(self.root).get("kept"), b"across restarts")


class S3ObjectStoreTests(ObjectStoreContract, unittest.TestCase):
    async def make_store(self):
        return await s3_store(self)

    async def test_prefix_namespaces_keys(self):
        prefixed = S3ObjectStore(
            self.store.bucket,
            endpoint=self.store.endpoint,
            prefix="/cluster-a/",
            access_key="testing",
            secret_key="testing",
        )
        self.addCleanup(prefixed.close)
        await prefixed.put("t/0/x", b"inside")
        self.assertEqual(await self.store.get("cluster-a/t/0/x"), b"inside")
        self.assertEqual(
            sizes(await prefixed.list("t/")), [("t/0/x", 6)])
        self.assertEqual(
            sizes(await self.store.list("")), [("cluster-a/t/0/x", 6)])

    async def test_list_follows_continuation_tokens(self):
        paged = S3ObjectStore(
            self.store.bucket,
            endpoint=self.store.endpoint,
            access_key="testing",
            secret_key="testing",
            list_page_size=2,
        )
        self.addCleanup(paged.close)
        keys = [f"p/{n}" for n in range(7)]
        for key in keys:
            await paged.put(key, b"1")
        self.assertEqual([info.key for info in await paged.list("p/")], keys)

    async def test_multipart_above_8_mib(self):
        data = os.urandom(8 * MiB + 3)
        await self.store.put("big/object", data)
        self.assertEqual(await self.store.head("big/object"), len(data))
        self.assertEqual(await self.store.get("big/object"), data)
        self.assertEqual(await self.store.get("big/object", 8 * MiB - 1), data[8 * MiB - 1 :])
        # S3 gives a multipart object an ETag ending in "-<parts>".
        self.assertEqual(await object_etag_suffix(self.store, "big/object"), "-2")
        await self.store.put("big/single", data[: 8 * MiB])
        self.assertEqual(await object_etag_suffix(self.store, "big/single"), "")

    async def test_failed_multipart_is_aborted(self):
        store = await s3_store(self, multipart_threshold=5 * MiB, part_size=5 * MiB)
        original = store._upload_part

        async def failing_second_part(key, name, upload_id, number, part):
            if number == 2:
                raise ObjectStoreUnavailable("injected part failure", key)
            return await original(key, name, upload_id, number, part)

        store._upload_part = failing_second_part
        with self.assertRaises(ObjectStoreUnavailable):
            await store.put("aborted", os.urandom(11 * MiB))
        self.assertEqual(await store.list(""), [])
        self.assertNotIn(b"<Upload>", await in_progress_uploads(store))

    async def test_missing_bucket(self):
        store = S3ObjectStore(
            unique_bucket(), endpoint=self.store.endpoint, access_key="t", secret_key="t"
        )
        self.addCleanup(store.close)
        with self.assertRaises(NoSuchBucket) as caught:
            await store.put("k", b"x")
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "NoSuchBucket"))
        with self.assertRaises(NoSuchBucket):
            await store.list("")

    async def test_server_down_then_back(self):
        server = S3Server()
        server.start()
        self.addCleanup(server.stop)
        store = await s3_store(self, server, backoff=0.05, max_backoff=0.2, max_attempts=30)
        await store.put("before", b"1")
        server.stop()

        def come_back():
            # moto forgets everything when it stops: bring the bucket back
            # before the store's next attempt can run.
            server.start()
            urllib.request.urlopen(
                urllib.request.Request(f"{server.endpoint}/{store.bucket}", method="PUT")
            ).close()

        reactor.callLater(0.4, come_back)
        await store.put("after", b"2")
        self.assertEqual(await store.get("after"), b"2")

    async def test_server_down_for_good(self):
        server = S3Server()
        server.start()
        self.addCleanup(server.stop)
        store = await s3_store(self, server, backoff=0.01, max_attempts=3)
        server.stop()
        with self.assertRaises(ObjectStoreUnavailable) as caught:
            await store.get("anything")
        self.assertIn("failed 3 times", str(caught.exception))
        self.assertIn("Connection", str(caught.exception))


class SignatureCheckingTests(unittest.TestCase):
    """Against a moto that verifies SigV4 and IAM permissions."""

    def setUp(self):
        self.server = s3_server(auth=True)

    def store(self, bucket=None, **options):
        options.setdefault("access_key", self.server.access_key)
        options.setdefault("secret_key", self.server.secret_key)
        store = S3ObjectStore(bucket or unique_bucket(), endpoint=self.server.endpoint, **options)
        self.addCleanup(store.close)
        return store

    async def test_signed_requests_are_accepted(self):
        for sign_payload in (False, True):
            store = self.store(sign_payload=sign_payload, list_page_size=1)
            await store.create_bucket()
            await store.put(ODD_KEY, b"signed")
            await store.put("plain", b"x" * 100_000)
            self.assertEqual(await store.get(ODD_KEY, 1, 3), b"ig")
            self.assertEqual(await store.head("plain"), 100_000)
            self.assertEqual([info.key for info in await store.list("")], [ODD_KEY, "plain"])
            await store.delete(ODD_KEY)

    async def test_multipart_is_signed(self):
        store = self.store(multipart_threshold=5 * MiB, part_size=5 * MiB)
        await store.create_bucket()
        data = os.urandom(5 * MiB + 100)
        await store.put("parts", data)
        self.assertEqual(await store.get("parts"), data)

    async def test_wrong_secret_is_refused(self):
        good = self.store()
        await good.create_bucket()
        forged = self.store(good.bucket, secret_key="not-the-secret")
        with self.assertRaises(AccessDenied) as caught:
            await forged.put("k", b"x")
        self.assertEqual(
            (caught.exception.status, caught.exception.code), (403, "SignatureDoesNotMatch")
        )
        self.assertEqual(await good.list(""), [])

    async def test_unknown_access_key_is_refused(self):
        store = self.store(access_key="AKIANOBODY", secret_key="whatever")
        with self.assertRaises(AccessDenied) as caught:
            await store.create_bucket()
        self.assertEqual(caught.exception.code, "InvalidAccessKeyId")


class ScriptedS3(Resource):
    """An HTTP server that plays a list of (status, body) answers in order.

    An answer is (status, body) or (status, body, headers); None never
    responds. Records what it was asked.
    """

    isLeaf = True

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.requests = []

    def render(self, request):
        self.requests.append(
            (request.method, request.uri, request.content.read(), request.requestHeaders)
        )
        answer = self.answers.pop(0)
        if answer is None:
            return NOT_DONE_YET
        status, body, *headers = answer
        request.setResponseCode(status)
        for name, value in (headers[0] if headers else {}).items():
            request.setHeader(name, value)
        return body


class ScriptedResponseTests(unittest.TestCase):
    def serve(self, answers, **options):
        resource = ScriptedS3(answers)
        site = Site(resource)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        options.setdefault("backoff", 0.01)
        store = S3ObjectStore(
            "bucket",
            endpoint=f"http://127.0.0.1:{port.getHost().port}",
            access_key="k",
            secret_key="s",
            **options,
        )
        self.addCleanup(store.close)
        return store, resource

    async def test_slow_down_and_server_errors_are_retried(self):
        store, server = self.serve(
            [
                (503, error_xml("SlowDown", "Reduce your request rate.")),
                (500, error_xml("InternalError", "We encountered an internal error.")),
                (400, error_xml("RequestTimeTooSkewed", "The difference is too large.")),
                (200, b"payload"),
            ]
        )
        self.assertEqual(await store.get("k"), b"payload")
        self.assertEqual([uri for _, uri, _, _ in server.requests], [b"/bucket/k"] * 4)

    async def test_every_attempt_is_told(self):
        told = []

        @implementer(IObjectStoreRequests)
        class Requests:
            def requested(self, operation, outcome, seconds, sent_bytes, received_bytes):
                told.append((operation, outcome, sent_bytes, received_bytes))

        store, server = self.serve(
            [(503, error_xml("SlowDown", "Slow")), (200, b""), (200, b"payload"), (404, b"")],
            requests=Requests())
        await store.put("k", b"12345")
        self.assertEqual(await store.get("k"), b"payload")
        with self.assertRaises(ObjectNotFound):
            await store.head("k")
        self.assertEqual([(operation, outcome, sent) for operation, outcome, sent, _ in told], [
            ("PutObject", "server_error", 5), ("PutObject", "ok", 5), ("GetObject", "ok", 0),
            ("HeadObject", "not_found", 0)])
        self.assertEqual(told[2][3], len(b"payload"))
        self.assertEqual(len(server.requests), len(told))

    async def test_retries_run_out(self):
        store, server = self.serve([(503, error_xml("SlowDown", "Slow"))] * 3, max_attempts=3)
        with self.assertRaises(ObjectStoreUnavailable) as caught:
            await store.put("k", b"x")
        self.assertIsInstance(caught.exception.__cause__, S3Error)
        self.assertEqual(caught.exception.__cause__.code, "SlowDown")
        self.assertEqual(len(server.requests), 3)

    async def test_client_errors_are_not_retried(self):
        store, server = self.serve([(400, error_xml("InvalidArgument", "Bad thing."))])
        with self.assertRaises(S3Error) as caught:
            await store.get("k")
        self.assertEqual(caught.exception.code, "InvalidArgument")
        self.assertIn("Bad thing.", str(caught.exception))
        self.assertEqual(caught.exception.request_id, "REQ123")
        self.assertEqual(len(server.requests), 1)

    async def test_bodiless_errors_map_by_status(self):
        store, _ = self.serve([(404, b""), (403, b"")])
        with self.assertRaises(ObjectNotFound):
            await store.head("k")
        with self.assertRaises(AccessDenied):
            await store.head("k")

    async def test_complete_multipart_error_in_a_200(self):
        upload = (
            b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Bucket>bucket</Bucket><Key>k</Key><UploadId>UP1</UploadId>"
            b"</InitiateMultipartUploadResult>"
        )
        store, server = self.serve(
            [
                (200, upload),
                (200, b"", {"ETag": '"etag-a"'}),
                (200, b"", {"ETag": '"etag-b"'}),
                (200, error_xml("InternalError", "Try again.")),
                (
                    200,
                    b"<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>",
                ),
            ],
            multipart_threshold=5 * MiB,
            part_size=5 * MiB,
        )
        await store.put("k", b"z" * (5 * MiB + 1))
        methods = [(method, uri) for method, uri, _, _ in server.requests]
        self.assertEqual(methods[0], (b"POST", b"/bucket/k?uploads="))
        self.assertEqual(
            sorted(methods[1:3]),
            [
                (b"PUT", b"/bucket/k?partNumber=1&uploadId=UP1"),
                (b"PUT", b"/bucket/k?partNumber=2&uploadId=UP1"),
            ],
        )
        self.assertEqual(methods[3:], [(b"POST", b"/bucket/k?uploadId=UP1")] * 2)
        self.assertIn(b"<PartNumber>2</PartNumber>", server.requests[4][2])
        self.assertEqual(sorted(len(body) for _, _, body, _ in server.requests[1:3]), [1, 5 * MiB])

    async def test_unanswered_request_times_out(self):
        store, server = self.serve([None, (200, b"late")], request_timeout=0.2)
        self.assertEqual(await store.get("k"), b"late")
        self.assertEqual(len(server.requests), 2)

    async def test_requests_carry_content_length(self):
        store, server = self.serve([(200, b""), (200, b"")])
        await store.put("k", b"12345")
        await store.put("empty", b"")
        lengths = [headers.getRawHeaders("content-length") for _, _, _, headers in server.requests]
        self.assertEqual(lengths, [["5"], ["0"]])
        self.assertIsNone(server.requests[0][3].getRawHeaders("transfer-encoding"))
        self.assertEqual(
            server.requests[0][3].getRawHeaders("x-amz-content-sha256"), ["UNSIGNED-PAYLOAD"]
        )

    async def test_keys_are_encoded_once(self):
        store, server = self.serve([(200, b"")])
        await store.get(ODD_KEY)
        self.assertEqual(
            server.requests[0][1],
            b"/bucket/dir/with%20space/plus%2Bsign~tilde%25percent/%C3%BCn%C3%AFcode%3D%26%3F.kfs",
        )


class ConfigurationTests(unittest.TestCase):
    def test_environment_fallbacks(self):
        store = S3ObjectStore(
            "b",
            environ={
                "AWS_ACCESS_KEY_ID": "id",
                "AWS_SECRET_ACCESS_KEY": "secret",
                "AWS_SESSION_TOKEN": "token",
                "AWS_DEFAULT_REGION": "eu-west-3",
                "AWS_ENDPOINT_URL": "http://generic:1",
            },
        )
        self.addCleanup(store.close)
        self.assertEqual((store.region, store.endpoint), ("eu-west-3", "http://generic:1"))
        self.assertEqual(store._auth.credentials.token, "token")
        store = S3ObjectStore(
            "b",
            environ={
                "AWS_ACCESS_KEY_ID": "id",
                "AWS_SECRET_ACCESS_KEY": "secret",
                "AWS_REGION": "ap-south-1",
                "AWS_DEFAULT_REGION": "eu-west-3",
                "AWS_ENDPOINT_URL_S3": "http://s3-only:2/",
                "AWS_ENDPOINT_URL": "http://generic:1",
            },
        )
        self.addCleanup(store.close)
        self.assertEqual((store.region, store.endpoint), ("ap-south-1", "http://s3-only:2"))
        store = S3ObjectStore("b", access_key="a", secret_key="s", environ={})
        self.addCleanup(store.close)
        self.assertEqual(store.endpoint, "https://s3.us-east-1.amazonaws.com")

    def without_aws_settings(self, **settings):
        """botocore's chain sees only ``settings``: no files, no instance
        metadata service."""
        missing = os.path.join(self.mktemp(), "missing")
        self.patch(os, "environ", {"AWS_SHARED_CREDENTIALS_FILE": missing, "AWS_CONFIG_FILE": missing,
                                   "AWS_EC2_METADATA_DISABLED": "true", **settings})

    def test_credentials_are_required(self):
        self.without_aws_settings()
        with self.assertRaises(ValueError):
            S3ObjectStore("b", environ={"AWS_ACCESS_KEY_ID": "only-the-id"})

    def test_credentials_from_the_shared_credentials_file_and_profile(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[default]\naws_access_key_id = default-id\naws_secret_access_key = default-secret\n"
                    "[ops]\naws_access_key_id = ops-id\naws_secret_access_key = ops-secret\n")
        self.without_aws_settings(AWS_SHARED_CREDENTIALS_FILE=path)
        store = S3ObjectStore("b", environ={})
        self.addCleanup(store.close)
        self.assertEqual(store._auth.credentials.access_key, "default-id")
        os.environ["AWS_PROFILE"] = "ops"
        store = S3ObjectStore("b", environ={})
        self.addCleanup(store.close)
        self.assertEqual(store._auth.credentials.secret_key, "ops-secret")

    def test_parts_respect_the_s3_minimum(self):
        with self.assertRaises(ValueError):
            S3ObjectStore("b", access_key="a", secret_key="s", part_size=MiB)

    def test_tcp_read_size_is_opt_in(self):
        from twisted.internet import tcp

        # An in-process broker on S3 may have raised it already: start from
        # Twisted's default, and check that making a store leaves it alone.
        self.patch(tcp.Connection, "bufferSize", 65536)
        store = S3ObjectStore("opt-in", endpoint="http://127.0.0.1:9", access_key="a", secret_key="b")
        self.addCleanup(store.close)
        self.assertEqual(tcp.Connection.bufferSize, 65536)
        raise_tcp_read_size()
        self.assertEqual(tcp.Connection.bufferSize, MiB)


def error_xml(code, message):
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>REQ123</RequestId></Error>"
    ).encode()


async def in_progress_uploads(store):
    """The bucket's ListMultipartUploads answer (through the store's signer)."""
    _, _, content = await store._request("ListMultipartUploads", "GET", None, None, query={"uploads": ""})
    return content


async def object_etag_suffix(store, key):
    _, headers, _ = await store._request("HeadObject", "HEAD", key, store._name(key))
    etag = headers.getRawHeaders("etag")[0].strip('"')
    return etag[etag.index("-") :] if "-" in etag else ""
