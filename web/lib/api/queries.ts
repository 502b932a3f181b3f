// Reads several components of one page need (the shell, the overview, the enterprise gates),
// deduplicated per request with React's cache.
import "server-only";

import { cache } from "react";

import { call } from "./client";

export const getMe = cache(() => call((api) => api.GET("/api/v1/me")));
export const getFeatures = cache(() => call((api) => api.GET("/api/v1/features")));
export const getLicense = cache(() => call((api) => api.GET("/api/v1/license")));
