/* The kubeconfig, found and read as kubectl does: $KUBECONFIG (several files merged), else
 * ~/.kube/config, else the in-cluster service account; one context resolved into what a client
 * needs to connect (server, TLS material, credentials, namespace). Owner: backend/kube/. */
#ifndef EXPT_BACKEND_KUBE_CONFIG_H
#define EXPT_BACKEND_KUBE_CONFIG_H

#include <stddef.h>

#include "../../util/diag.h"
#include "../../util/err.h"

/* Where the in-cluster service account's files are mounted. */
#define EXPT_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* Largest kubeconfig file read (kubeconfigs with many embedded certificates stay far below). */
#define EXPT_KUBE_CONFIG_MAX (8u << 20)

/* An exec credential plugin (users[].user.exec): how EKS, GKE and AKS users log in. */
struct expt_kube_exec {
	char *api_version;	  /* "client.authentication.k8s.io/v1" (or v1beta1) */
	char *command;		  /* as written: a path, or a name looked up in $PATH */
	char **args;		  /* NULL-terminated; never NULL */
	char **env;		  /* "NAME=value", NULL-terminated; never NULL */
	int provide_cluster_info; /* pass the cluster in KUBERNETES_EXEC_INFO */
	char *install_hint;	  /* shown when the command is not found; NULL if none */
	char *interactive_mode;	  /* "Never", "IfAvailable", "Always"; NULL if not set */
};

/* One resolved context. Every string is owned by the struct; NULL when not set. */
struct expt_kube_config {
	char *context;	    /* context name; "in-cluster" for the service account */
	char *cluster_name; /* contexts[].context.cluster */
	char *user_name;    /* contexts[].context.user ("" when the context names no user) */
	char *server;	    /* "https://host:port" (no trailing '/'); never NULL */
	char *ns;      /* namespace: override, else the context's, else "default"; never NULL */
	char *ca_pem;  /* CA bundle (PEM) from certificate-authority or -data; NULL: system */
	size_t ca_len; /* bytes in ca_pem */
	char *ca_file; /* the certificate-authority path, when it came from a file */
	int insecure;  /* insecure-skip-tls-verify: true, only ever from the kubeconfig */
	char *tls_server_name;	  /* name to verify the server's certificate against (and SNI) */
	char *cert_pem, *key_pem; /* client certificate and key (PEM), from files or -data */
	size_t cert_len, key_len;
	char *token;		   /* bearer token */
	char *token_file;	   /* bearer token re-read from this file (tokenFile; in-cluster) */
	char *username, *password; /* basic auth */
	struct expt_kube_exec *exec; /* NULL when the user has no exec plugin */
	int in_cluster;		     /* came from the service account, not a kubeconfig */
	/* Where each part came from, for messages: the kubeconfig file that defined the context,
	 * the cluster and the user ("in-cluster" or the service-account dir in-cluster). */
	char *context_file, *cluster_file, *user_file;
};

struct expt_kube_config_opts {
	/* A kubeconfig path, or several separated by ':' (merged like $KUBECONFIG); NULL: use
	 * $KUBECONFIG, else ~/.kube/config, else the in-cluster service account when
	 * KUBERNETES_SERVICE_HOST is set. */
	const char *kubeconfig;
	const char *context; /* NULL: current-context */
	const char *ns;	     /* NULL: the context's namespace, else "default" */
	/* The service-account directory for in-cluster config; NULL: EXPT_KUBE_SA_DIR (tests). */
	const char *sa_dir;
	/* Don't read the files a kubeconfig names (certificate-authority, client-certificate,
	 * client-key): the fuzz target, which must not open whatever path its input names. */
	int no_file_refs;
};
#define EXPT_KUBE_CONFIG_OPTS_INIT                                                                 \
	{                                                                                          \
		NULL, NULL, NULL, NULL, 0                                                          \
	}

/* Finds, reads, merges and resolves the kubeconfig per opts (NULL: all defaults). Merging
 * follows kubectl: for each named cluster/user/context and for current-context, the first file
 * that sets it wins; files that do not exist are skipped (all of them missing is an error).
 * Problems in a file (bad YAML, a field of the wrong type, bad base64) go to diags as
 * "FILE:LINE:COL: users[0].user.client-key-data: expected base64 ..." and the call returns
 * EXPT_EUSAGE with err summarising. A context, cluster or user that does not exist is
 * EXPT_EUSAGE naming the ones that do; no kubeconfig at all is EXPT_ENOTFOUND naming what was
 * tried; unreadable referenced files (certificate-authority, client-key, ...) EXPT_EUSAGE naming
 * the file and the field. *out: free with expt_kube_config_free. */
int expt_kube_config_load(struct expt_kube_config **out, const struct expt_kube_config_opts *opts,
			  struct expt_diags *diags, struct expt_err *err);

/* The same for one kubeconfig document held in memory (named file in messages; relative paths
 * in it resolve against file's directory). Used by load and by the fuzz target. */
int expt_kube_config_parse(struct expt_kube_config **out, const char *data, size_t len,
			   const char *file, const struct expt_kube_config_opts *opts,
			   struct expt_diags *diags, struct expt_err *err);

/* The in-cluster config: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (IPv6 in
 * brackets), sa_dir/ca.crt, token_file = sa_dir/token (the client re-reads it: bound tokens
 * rotate), namespace from opts->ns, else $POD_NAMESPACE, else sa_dir/namespace, else "default". */
int expt_kube_config_in_cluster(struct expt_kube_config **out,
				const struct expt_kube_config_opts *opts, struct expt_err *err);

void expt_kube_config_free(struct expt_kube_config *c); /* NULL is a no-op */

#endif
