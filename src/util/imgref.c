/* Image reference parsing (docker/distribution's reference grammar, the common subset). */
#include "imgref.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "banned.h"

static int component_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0])))
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (islower(ch) || isdigit(ch))
			continue;
		if (ch != '.' && ch != '_' && ch != '-')
			return 0;
		/* separators: ".", "_", "__" or runs of "-"; never at the end */
		if (i + 1 == n)
			return 0;
		if (ch == '.' &&
		    !(islower((unsigned char)s[i + 1]) || isdigit((unsigned char)s[i + 1])))
			return 0;
		if (ch == '_' && s[i + 1] == '_' && i + 2 < n && s[i + 2] == '_')
			return 0;
	}
	return 1;
}

int expt_imgref_host_is_local(const char *host)
{
	size_t n = strcspn(host, ":");

	if (host[0] == '[')
		return !strncmp(host, "[::1]", 5);
	return (n == 9 && !strncmp(host, "localhost", 9)) || !strncmp(host, "127.", 4);
}

int expt_imgref_parse(const char *s, struct expt_imgref *out, const char **why)
{
	const char *at, *slash, *path, *p;
	char name[768];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		*why = "an empty image reference";
		return -1;
	}
	at = strchr(s, '@');
	n = at ? (size_t)(at - s) : strlen(s);
	if (at) {
		const char *d = at + 1;
		if (strncmp(d, "sha256:", 7) || strlen(d) != 71 ||
		    strspn(d + 7, "0123456789abcdef") != 64) {
			*why = "a digest is sha256: and 64 lowercase hex digits";
			return -1;
		}
		snprintf(out->digest, sizeof(out->digest), "%s", d);
	}
	if (n >= sizeof(name)) {
		*why = "the name is too long";
		return -1;
	}
	memcpy(name, s, n);
	name[n] = '\0';
	/* A tag follows the last ':' after the last '/'. */
	slash = strrchr(name, '/');
	p = strrchr(slash ? slash : name, ':');
	if (p) {
		size_t tl = strlen(p + 1);
		if (!tl || tl > 128 || !(isalnum((unsigned char)p[1]) || p[1] == '_') ||
		    strspn(p + 1,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
			tl) {
			*why = "a tag is up to 128 letters, digits, '_', '.' and '-'";
			return -1;
		}
		snprintf(out->tag, sizeof(out->tag), "%s", p + 1);
		name[p - name] = '\0';
	}
	slash = strchr(name, '/');
	if (slash && (memchr(name, '.', (size_t)(slash - name)) ||
		      memchr(name, ':', (size_t)(slash - name)) ||
		      ((size_t)(slash - name) == 9 && !strncmp(name, "localhost", 9)))) {
		size_t hl = (size_t)(slash - name);
		if (hl >= sizeof(out->host) ||
		    strspn(name,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") <
			hl) {
			*why = "a registry host is a name or address with an optional :port";
			return -1;
		}
		memcpy(out->host, name, hl);
		out->host[hl] = '\0';
		path = slash + 1;
	} else {
		snprintf(out->host, sizeof(out->host), "index.docker.io");
		path = name;
	}
	if (!strcmp(out->host, "docker.io") || !strcmp(out->host, "registry-1.docker.io"))
		snprintf(out->host, sizeof(out->host), "index.docker.io");
	for (p = path;;) {
		const char *e = strchr(p, '/');
		size_t cl = e ? (size_t)(e - p) : strlen(p);
		if (!component_ok(p, cl)) {
			*why = "a repository path is lowercase letters, digits and '.', '_', '-' "
			       "between them, parts separated by '/'";
			return -1;
		}
		if (!e)
			break;
		p = e + 1;
	}
	if (strlen(path) + 8 >= sizeof(out->repo)) {
		*why = "the name is too long";
		return -1;
	}
	{
		size_t off = 0, pl = strlen(path);
		if (!strcmp(out->host, "index.docker.io") && !strchr(path, '/')) {
			memcpy(out->repo, "library/", 8);
			off = 8;
		}
		memcpy(out->repo + off, path, pl + 1); /* fits: checked above */
	}
	return 0;
}
