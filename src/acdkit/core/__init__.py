"""The domain: pure logic with no I/O and no clock reads (time is passed in)."""
