// Original file: proto/zferry.proto


export interface OrderRequest {
}

export interface OrderRequest__Output {
}
