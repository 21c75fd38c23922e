from twisted.trial.unittest import SynchronousTestCase

from kafscale.metadata.interfaces import SegmentRef
from kafscale.metadata.manifest import Manifest


def ref(base, last, size=10):
    return SegmentRef(base, last, 1000 + last, size, last - base + 1, f"t/0/segment-{base}.kfs")


class ManifestTests(SynchronousTestCase):
    def test_a_sequence_equal_to_its_entries(self):
        entries = (ref(0, 9), ref(10, 19), ref(20, 29))
        manifest = Manifest(entries)
        self.assertEqual(manifest, entries)
        self.assertEqual(entries, manifest)
        self.assertEqual(list(reversed(manifest)), list(reversed(entries)))
        self.assertEqual((manifest[0], manifest[-1], len(manifest)), (entries[0], entries[2], 3))
        self.assertEqual(manifest[1:], entries[1:])
        self.assertEqual(manifest[::2], entries[::2])
        self.assertIn(ref(10, 19), manifest)
        self.assertNotEqual(manifest, entries[:2])
        self.assertEqual(hash(manifest), hash(entries))
        with self.assertRaises(IndexError):
            manifest[3]

    def test_appends_leave_earlier_states_as_they_were(self):
        first = Manifest([ref(0, 9)])
        second = first.appended(ref(10, 19))
        third = second.appended(ref(20, 29))
        # An append to an older state (a retried commit) takes its own copy.
        other = second.appended(ref(20, 24))
        self.assertEqual(first, (ref(0, 9),))
        self.assertEqual(second, (ref(0, 9), ref(10, 19)))
        self.assertEqual(third, (ref(0, 9), ref(10, 19), ref(20, 29)))
        self.assertEqual(other, (ref(0, 9), ref(10, 19), ref(20, 24)))
        self.assertEqual(third.appended(ref(30, 30))[-1], ref(30, 30))

    def test_sizes_and_lookups(self):
        manifest = Manifest([ref(0, 9, 5), ref(10, 19, 7)]).appended(ref(20, 29, 11))
        self.assertEqual(manifest.size, 23)
        self.assertEqual([manifest.find(offset) for offset in (0, 9, 10, 25, 99)], [0, 0, 1, 2, 2])
        self.assertEqual([manifest.below(offset) for offset in (0, 9, 10, 29, 30)], [0, 0, 1, 2, 3])
        self.assertEqual(manifest.position_of(ref(10, 19, 7)), 1)
        self.assertEqual(manifest.position_of(ref(10, 19, 8)), -1)
        self.assertEqual((Manifest().find(5), Manifest().below(5), Manifest().size), (-1, 0, 0))

    def test_dropping_a_prefix(self):
        manifest = Manifest([ref(0, 9), ref(10, 19), ref(20, 29)])
        dropped = manifest.dropped(2)
        self.assertEqual(dropped, (ref(20, 29),))
        self.assertEqual((dropped.size, dropped.find(25), dropped.below(30)), (10, 0, 1))
        self.assertEqual(dropped.appended(ref(30, 39)), (ref(20, 29), ref(30, 39)))
        self.assertEqual(len(manifest), 3)

    def test_dropping_often_does_not_keep_every_entry_alive(self):
        manifest = Manifest()
        for base in range(0, 5000, 10):
            manifest = manifest.appended(ref(base, base + 9))
            if len(manifest) > 10:
                manifest = manifest.dropped(1)
        self.assertEqual(len(manifest), 10)
        self.assertLess(len(manifest._shared.refs), 2100)
        self.assertEqual(manifest[0], ref(4900, 4909))

    def test_replacing_a_run(self):
        manifest = Manifest([ref(0, 9), ref(10, 19), ref(20, 29), ref(30, 39)])
        replaced = manifest.replaced(1, 3, [ref(10, 29, 20)])
        self.assertEqual(replaced, (ref(0, 9), ref(10, 29, 20), ref(30, 39)))
        self.assertEqual((replaced.size, replaced.find(29)), (40, 1))
        self.assertEqual(manifest.dropped(1).replaced(0, 2, [ref(10, 29, 20)]), (ref(10, 29, 20), ref(30, 39)))
        self.assertEqual(len(manifest), 4)
