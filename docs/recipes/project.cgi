#!/usr/bin/fossil
repository: /srv/fossil/project.fossil
