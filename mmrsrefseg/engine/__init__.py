# Copyright (c) mmrsrefseg contributors. All rights reserved.
