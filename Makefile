# The README's two commands: `make run` and `make test`. Everything else
# here serves them. Meson and Ninja do the building.

BUILD ?= build
GRACE := $(BUILD)/grace
MESON_OPTS ?=
STAMP := $(BUILD)/.bootstrap

.PHONY: all run test bench clean bootstrap install deb

all: $(GRACE)

$(STAMP): scripts/bootstrap.sh
	scripts/bootstrap.sh --test
	@mkdir -p $(BUILD) && touch $@

bootstrap: $(STAMP)

$(BUILD)/build.ninja: | $(STAMP)
	meson setup $(BUILD) $(MESON_OPTS)

# Ninja knows the real dependencies; always ask it.
$(GRACE): $(BUILD)/build.ninja FORCE
	ninja -C $(BUILD)

run: $(GRACE)
	$(GRACE) serve --config etc/grace.ini

test: $(GRACE)
	scripts/test.sh $(BUILD)

# As packagers expect: make install PREFIX=/usr DESTDIR=/tmp/stage
PREFIX ?= /usr/local
DESTDIR ?=
install: $(GRACE)
	scripts/install.sh $(BUILD) $(PREFIX) $(DESTDIR)

# The Debian package from this build, in $(BUILD)/deb (dpkg-buildpackage
# -us -uc builds the same from a clean tree).
deb: $(GRACE)
	scripts/deb.sh $(BUILD) $(BUILD)/deb

bench: $(GRACE)
	scripts/bootstrap.sh --bench
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan

FORCE:
