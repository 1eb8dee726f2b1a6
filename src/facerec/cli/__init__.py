"""The ``facerec`` command line: enroll, identify, verify, detect, people, collections, import, health."""
